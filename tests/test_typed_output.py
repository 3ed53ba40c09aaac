"""Records typed by the dataset's Table Schema (``connector/transfer/typed.py``): a CSV source's
integer, number and boolean columns arrive as JSON numbers and booleans, blanks as null."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pytest
import yaml

from connector.transfer.typed import SchemaTyping
from connector.translate.ndjson import encode_ndjson
from mesh.errors import FailedPrecondition

from .catalog_fixtures import setup_catalog_mesh
from .transfer_fixtures import agree, dataset_doc, fetch_cli, ndjson_rows

SCHEMA = {"fields": [{"name": "施設コード", "type": "string"},
                     {"name": "名称", "type": "string"},
                     {"name": "収容人数", "type": "integer"},
                     {"name": "面積", "type": "number"},
                     {"name": "バリアフリー", "type": "boolean"},
                     {"name": "備考", "type": "string"}]}
ROWS = [["0001", "姫路市民会館", "1,200", "3500.5", "true", "駐車場あり"],
        ["0002", "公民館", "", "", "", ""],
        ["0003", "体育館", "８０", "-12", "0", "改修中\n（令和7年まで）"]]
EXPECTED = [
    {"施設コード": "0001", "名称": "姫路市民会館", "収容人数": 1200, "面積": 3500.5,
     "バリアフリー": True, "備考": "駐車場あり"},
    {"施設コード": "0002", "名称": "公民館", "収容人数": None, "面積": None, "バリアフリー": None,
     "備考": None},
    {"施設コード": "0003", "名称": "体育館", "収容人数": 80, "面積": -12.0, "バリアフリー": False,
     "備考": "改修中\n（令和7年まで）"}]


def _batch(rows: list[list[str]]) -> pa.RecordBatch:
    names = [f["name"] for f in SCHEMA["fields"]]
    return pa.record_batch({n: [r[i] for r in rows] for i, n in enumerate(names)})


def _lines(batch: pa.RecordBatch) -> list[dict]:
    return [json.loads(line) for line in encode_ndjson(batch).decode().splitlines()]


def test_text_columns_become_what_the_schema_declares():
    batch = _batch(ROWS)
    assert [r["収容人数"] for r in _lines(batch)] == ["1,200", "", "８０"]   # untyped: quoted text
    typing = SchemaTyping(batch.schema, SCHEMA)
    assert typing.schema.types == [pa.string(), pa.string(), pa.int64(), pa.float64(), pa.bool_(),
                                   pa.string()]
    assert _lines(typing.apply(batch)) == EXPECTED


def test_missing_values_declared_per_schema_and_per_field_and_own_boolean_words():
    schema = {"missingValues": ["", "-"], "fields": [
        {"name": "人数", "type": "integer", "missingValues": ["ー", "不明"]},
        {"name": "面積", "type": "number"},
        {"name": "有無", "type": "boolean", "trueValues": ["有"], "falseValues": ["無"]}]}
    batch = pa.record_batch({"人数": ["ー", "不明", "3"], "面積": ["-", "", "1e3"],
                             "有無": ["有", "無", "-"]})
    typed = SchemaTyping(batch.schema, schema).apply(batch)
    assert typed.to_pylist() == [{"人数": None, "面積": None, "有無": True},
                                 {"人数": None, "面積": None, "有無": False},
                                 {"人数": 3, "面積": 1000.0, "有無": None}]


def test_a_value_of_another_type_is_refused_not_guessed():
    batch = _batch([*ROWS[:1], ["0004", "x", "ー", "", "", ""]])
    with pytest.raises(FailedPrecondition) as exc:
        SchemaTyping(batch.schema, SCHEMA).apply(batch, first_record=101)
    assert exc.value.code == "schema_type_mismatch"
    assert exc.value.details == {"column": "収容人数", "record": 102, "value": "ー", "type": "integer"}
    assert "missingValues" in exc.value.message and "収容人数" in exc.value.message_ja


def test_typed_sources_and_undeclared_columns_pass_as_they_are():
    batch = pa.record_batch({"n": pa.array([1, None], pa.int64()), "other": ["", "x"]})
    typing = SchemaTyping(batch.schema, {"fields": [{"name": "n", "type": "integer"}]})
    assert not typing.changes_anything and typing.apply(batch) is batch
    assert SchemaTyping(batch.schema, None).schema == batch.schema


@pytest.mark.integration
async def test_a_csv_dataset_arrives_typed_in_ndjson(harness):
    h = harness
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    folder = h.root / "feed"
    folder.mkdir()
    source = folder / "facilities.csv"
    with source.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([[x["name"] for x in SCHEMA["fields"]], *ROWS])
    desc = folder / "dataset.yaml"
    desc.write_text(yaml.safe_dump({**dataset_doc(source), "schema": SCHEMA}, allow_unicode=True),
                    encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                             "--file", str(desc))
    assert rc == 0, err
    await h.start_connector("osaka")
    agreement = await agree(h)
    out = h.root / "got" / "facilities.ndjson"
    rc, _, err = await fetch_cli(h, agreement, out)
    assert rc == 0, err
    assert ndjson_rows(out) == EXPECTED
    arrow_out = h.root / "got" / "facilities.arrow"
    rc, _, err = await fetch_cli(h, agreement, arrow_out, "--format", "arrow")
    assert rc == 0, err
    with pa.ipc.open_stream(arrow_out.read_bytes()) as reader:
        table = reader.read_all()
    assert table.schema.field("収容人数").type == pa.int64()
    assert table.column("バリアフリー").to_pylist() == [True, None, False]


TOILETS = {"layout": "公衆トイレ一覧", "edition": "自治体標準"}
TOILET_SCHEMA = {"fields": [{"name": "名称", "type": "string"},
                            {"name": "男性トイレ総数", "type": "integer"},
                            {"name": "女性トイレ総数", "type": "integer"}]}


def _toilet_doc(missing: object = None) -> dict:
    standard = {**TOILETS, **({"missingValues": missing} if missing is not None else {})}
    return {"schema": TOILET_SCHEMA, "standard": standard}


def test_the_standard_declares_missing_values_per_column_and_for_all():
    batch = pa.record_batch({"名称": ["A公園", "B公園", "C公園"], "男性トイレ総数": ["3", "ー", ""],
                             "女性トイレ総数": ["不明", "2", "ー"]})
    per_column = SchemaTyping.for_dataset(batch.schema, _toilet_doc(
        {"男性トイレ総数": ["ー"], "女性トイレ総数": ["不明", "ー"]}))
    assert per_column.apply(batch).to_pylist() == [
        {"名称": "A公園", "男性トイレ総数": 3, "女性トイレ総数": None},
        {"名称": "B公園", "男性トイレ総数": None, "女性トイレ総数": 2},
        {"名称": "C公園", "男性トイレ総数": None, "女性トイレ総数": None}]
    for every in (["ー", "不明"], {"*": ["ー", "不明"]}):
        typed = SchemaTyping.for_dataset(batch.schema, _toilet_doc(every)).apply(batch)
        assert typed.column("女性トイレ総数").to_pylist() == [None, 2, None]
    only_men = SchemaTyping.for_dataset(batch.schema, _toilet_doc({"男性トイレ総数": ["ー"]}))
    with pytest.raises(FailedPrecondition) as exc:       # 女性トイレ総数's 不明 is not declared
        only_men.apply(batch)
    assert exc.value.details["column"] == "女性トイレ総数" and exc.value.details["value"] == "不明"
    for undeclared in (_toilet_doc(), {"schema": TOILET_SCHEMA}):
        with pytest.raises(FailedPrecondition) as exc:
            SchemaTyping.for_dataset(batch.schema, undeclared).apply(batch)
        assert exc.value.code == "schema_type_mismatch"


@pytest.mark.integration
async def test_declared_missing_values_arrive_as_null(harness):
    h = harness
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    folder = h.root / "feed"
    folder.mkdir()
    source = folder / "toilets.csv"
    with source.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["名称", "男性トイレ総数", "女性トイレ総数"],
                                 ["A公園", "3", "ー"], ["B公園", "ー", "2"]])
    desc = folder / "dataset.yaml"
    doc = {**dataset_doc(source), **_toilet_doc({"*": ["ー"]})}
    desc.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                             "--file", str(desc))
    assert rc == 0, err
    await h.start_connector("osaka")
    agreement = await agree(h)
    out = h.root / "got" / "toilets.ndjson"
    rc, _, err = await fetch_cli(h, agreement, out)
    assert rc == 0, err
    assert ndjson_rows(out) == [{"名称": "A公園", "男性トイレ総数": 3, "女性トイレ総数": None},
                                {"名称": "B公園", "男性トイレ総数": None, "女性トイレ総数": 2}]

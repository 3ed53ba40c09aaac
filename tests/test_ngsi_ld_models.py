"""NGSI-LD entity models (the built-ins from the standard datasets, an operator's own file), the
policy rules of local reads, and the facade's CLI refusing bad views and keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from connector.ngsi_ld.cli import ngsi_ld
from connector.ngsi_ld.models import builtin_models, load_model, parse_model
from connector.ngsi_ld.views import _policy_allows_local_use, parse_view
from mesh.errors import AreameshError, InvalidRequest, PermissionDenied
from mesh.standards import get_standard

from .ngsi_ld_fixtures import aed_rows

PURPOSE = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "防災"}


def test_every_builtin_reads_its_standards_columns_only():
    models = builtin_models()
    assert set(models) == {"builtin:aed", "builtin:evacuation_sites", "builtin:public_toilets"}
    for model in models.values():
        columns = {f.name for f in get_standard(model.standard).fields}
        used = set(model.id_columns)
        for rule in model.rules:
            spec = rule.spec
            used |= {spec} if isinstance(spec, str) and rule.kind != "value" else set()
            used |= set(spec.values()) if rule.kind in ("geo", "object") else set()
            used |= set(spec) if rule.kind == "flags" else set()
        assert used <= columns, (model.name, used - columns)


def test_aed_rows_become_geolonia_style_entities():
    entity = load_model("builtin:AED設置箇所一覧").entity(aed_rows()[0])
    assert entity["id"] == "urn:ngsi-ld:AED:282014-0001" and entity["type"] == "AED"
    assert entity["address"]["value"] == {
        "addressCountry": "JP", "addressRegion": "兵庫県", "addressLocality": "姫路市",
        "addressText": "兵庫県姫路市姫路駅北口", "abrMachiazaId": "0008001"}
    assert entity["location"]["value"]["type"] == "Point"
    assert "nameEn" not in entity             # empty cells are left out


def test_evacuation_site_follows_geolonias_model():
    row = {"NO": "12", "名称": "白鷺小学校", "名称_カナ": "シラサギショウガッコウ",
           "市区町村コード": "282014", "都道府県名": "兵庫県", "市区町村名": "姫路市",
           "住所": "兵庫県姫路市本町68", "緯度": "34.8394", "経度": "134.6939", "標高": "15.5",
           "災害種別_洪水": "1", "災害種別_地震": "1", "災害種別_津波": "", "指定避難所との重複": "1",
           "想定収容人数": "1,200", "対象となる町会・自治会": "本町;北条"}
    e = load_model("builtin:evacuation_sites").entity(row)
    assert e["id"] == "urn:ngsi-ld:EvacuationSite:282014-12" and e["type"] == "EvacuationSite"
    assert e["hazardTypes"]["value"] == ["flood", "earthquake"]
    assert e["alsoDesignatedShelter"]["value"] is True and e["maxCapacity"]["value"] == 1200
    assert e["targetAreas"]["value"] == ["本町", "北条"] and e["elevation"]["value"] == 15.5
    assert e["location"]["value"]["coordinates"] == [134.6939, 34.8394]
    row.update({"指定避難所との重複": "", "想定収容人数": "多数", "緯度": "", "経度": ""})
    e = load_model("builtin:evacuation_sites").entity(row)
    assert e["alsoDesignatedShelter"]["value"] is False
    assert "maxCapacity" not in e and "location" not in e     # not a number: left out, not invented


def test_a_row_without_its_id_columns_gives_no_entity():
    row = aed_rows()[0]
    row["ID"] = " "
    assert load_model("builtin:aed").entity(row) is None


@pytest.mark.parametrize("doc,fragment", [
    ("not a mapping", "expected a mapping"),
    ({"type": "AED", "attributes": {"name": {"column": "名称"}}}, "missing 'id'"),
    ({"type": "AED 1", "id": "urn:x:{ID}", "attributes": {"a": {"column": "x"}}}, "plain term"),
    ({"type": "AED", "id": "urn:ngsi-ld:AED", "attributes": {"a": {"column": "x"}}}, "URI template"),
    ({"type": "AED", "id": "urn:x:{ID}", "attributes": {}}, "non-empty"),
    ({"type": "AED", "id": "urn:x:{ID}", "attributes": {"id": {"column": "x"}}}, "plain term"),
    ({"type": "AED", "id": "urn:x:{ID}", "attributes": {"a": {"column": "x", "value": 1}}}, "exactly one"),
    ({"type": "AED", "id": "urn:x:{ID}", "attributes": {"a": {"column": "x", "cast": "date"}}}, "cast"),
    ({"type": "AED", "id": "urn:x:{ID}", "attributes": {"a": {"geo": {"lon": "x"}}}}, "lon and lat"),
    ({"type": "AED", "id": "urn:x:{ID}", "attributes": {"a": {"column": "x", "sort": 1}}}, "unknown keys"),
])
def test_bad_model_files_are_refused_naming_the_problem(doc, fragment: str):
    with pytest.raises(InvalidRequest) as err:
        parse_model(doc, "mine.yaml")
    assert fragment in err.value.message and err.value.code == "invalid_ngsi_ld_model"


def _signed(policy: dict) -> SimpleNamespace:
    return SimpleNamespace(agreement=SimpleNamespace(policy=policy))


def _constraint(op: str, when: datetime) -> dict:
    return {"leftOperand": "dateTime", "operator": op, "rightOperand": when.isoformat()}


def test_local_reads_follow_the_policy_window_the_delete_duty_and_personal_data():
    now = datetime.now(UTC)
    fetched = now - timedelta(hours=1)
    open_window = {"permissions": [{"action": "use", "constraints": [
        PURPOSE, _constraint("lt", now + timedelta(days=1))]}]}
    _policy_allows_local_use(_signed(open_window), fetched, now)        # allowed: no error
    closed = {"permissions": [{"action": "use", "constraints": [PURPOSE, _constraint("lt", now)]}]}
    not_yet = {"permissions": [{"action": "use", "constraints": [
        PURPOSE, _constraint("gteq", now + timedelta(hours=1))]}]}
    due = {"permissions": [{"action": "use", "constraints": [PURPOSE]}],
           "duties": [{"action": "delete", "constraints": [
               {"leftOperand": "elapsedTime", "operator": "eq", "rightOperand": "PT30M"}]}]}
    personal = {"permissions": [{"action": "use", "constraints": [
        PURPOSE, {"leftOperand": "consent", "operator": "eq", "rightOperand": True}]}]}
    for policy, code in ((closed, "policy_window_closed"), (not_yet, "policy_window_closed"),
                         (due, "delete_duty_due"), (personal, "personal_data_not_served")):
        with pytest.raises(PermissionDenied) as err:
            _policy_allows_local_use(_signed(policy), fetched, now)
        assert err.value.code == code
    _policy_allows_local_use(_signed(due), now - timedelta(minutes=10), now)   # not yet due


@pytest.mark.parametrize("doc,fragment", [
    ({"model": "builtin:aed"}, "either agreement"),
    ({"agreement": "a", "dataset": "d", "file": "x.csv", "model": "builtin:aed"}, "either agreement"),
    ({"agreement": "a", "file": "x.xlsx", "model": "builtin:aed"}, "file must"),
    ({"dataset": "himeji-aed"}, "model is required"),
    ({"dataset": "himeji-aed", "model": "builtin:aed", "cache": True}, "unknown keys"),
])
def test_bad_views_are_refused(doc: dict, fragment: str):
    with pytest.raises(AreameshError) as err:
        parse_view("aed", doc)
    assert fragment in err.value.message


def test_the_cli_refuses_bad_views_and_keys(tmp_path: Path):
    runner = CliRunner()
    d = str(tmp_path)
    bad_model = tmp_path / "bad.yaml"
    bad_model.write_text(yaml.safe_dump({"type": "AED", "attributes": {}}), encoding="utf-8")
    for args in (["view", "add", "--data-dir", d, "aed", "--dataset", "x", "--model", "builtin:nothing"],
                 ["view", "add", "--data-dir", d, "aed", "--dataset", "x", "--model", str(bad_model)],
                 ["view", "add", "--data-dir", d, "A B", "--dataset", "x", "--model", "builtin:aed"],
                 ["key", "create", "--data-dir", d, "--label", "x", "--view", ""],
                 ["key", "revoke", "--data-dir", d, "0123456789ab"]):
        result = runner.invoke(ngsi_ld, args)
        assert result.exit_code != 0, (args, result.output)
    result = runner.invoke(ngsi_ld, ["view", "add", "--data-dir", d, "aed", "--dataset", "himeji-aed",
                                     "--model", "builtin:aed"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(ngsi_ld, ["view", "add", "--data-dir", d, "aed", "--dataset", "himeji-aed",
                                    "--model", "builtin:aed"])
    assert again.exit_code != 0 and "exists" in again.output
    listed = runner.invoke(ngsi_ld, ["view", "list", "--data-dir", d, "--json"])
    assert listed.exit_code == 0 and '"serving": false' in listed.output   # no such dataset here
    made = runner.invoke(ngsi_ld, ["key", "create", "--data-dir", d, "--label", "map", "--view", "aed"])
    assert made.exit_code == 0 and "amld_" in made.output
    keys = runner.invoke(ngsi_ld, ["key", "list", "--data-dir", d, "--json"])
    assert "amld_" not in keys.output and "sha256" not in keys.output and '"map"' in keys.output
    assert oct((tmp_path / "ngsi-ld" / "keys.json").stat().st_mode & 0o777) == "0o600"

"""A dataset declares its standard layout and edition (issue 15 §1): ``standard`` in the
description, checked field by field; ``standard_type`` unchanged (the 2026 edition)."""

from __future__ import annotations

from typing import Any

import pytest

from mesh import standards
from mesh.datasets import declared_standard, parse_description, standard_errors, validate_description
from mesh.errors import InvalidRequest

BASE: dict[str, Any] = {"id": "toilets-1", "publisher": "282014", "title": "公衆トイレ",
                        "description": "市内の公衆トイレ", "themes": ["観光"], "license": "CC-BY-4.0"}
JICHITAI = "自治体標準オープンデータセット"


def errors(standard: Any, **extra: Any) -> list[tuple[str, str]]:
    found = validate_description({**BASE, "standard": standard, **extra}, standard_check=standard_errors)
    return [(e.field, e.message_ja) for e in found]


def test_string_and_mapping_declarations_publish_one_shape() -> None:
    by_string = parse_description({**BASE, "standard": "公衆トイレ一覧@自治体標準"},
                                  standard_check=standard_errors)
    assert by_string["standard"] == {"layout": "公衆トイレ一覧", "edition": JICHITAI}
    assert "standard_type" not in by_string
    # the schema defaults to that edition's layout, not the 2026 model's
    assert [f["name"] for f in by_string["schema"]["fields"]] == \
        standards.get_standard("公衆トイレ一覧", JICHITAI).column_names
    by_mapping = parse_description(
        {**BASE, "standard": {"layout": "公衆トイレ一覧", "edition": "2019",
                              "missingValues": {"*": ["ー"], "男性トイレ総数": ["不明"]}}},
        standard_check=standard_errors)
    assert by_mapping["standard"] == {"layout": "公衆トイレ一覧", "edition": "推奨データセット-2019",
                                      "missingValues": {"*": ["ー"], "男性トイレ総数": ["不明"]}}
    # the registry parses the published form again to the same thing
    assert parse_description(by_mapping, standard_check=standard_errors) == by_mapping
    assert declared_standard(by_mapping)["edition"] == "推奨データセット-2019"


def test_standard_type_is_unchanged_and_means_2026() -> None:
    published = parse_description({**BASE, "standard_type": "公衆トイレ一覧"},
                                  standard_check=standard_errors)
    assert published["standard_type"] == "公衆トイレ一覧" and "standard" not in published
    assert published["schema"] == standards.get_standard("公衆トイレ一覧").table_schema()
    assert declared_standard(published) == {"layout": "公衆トイレ一覧",
                                            "edition": standards.DEFAULT_EDITION}
    assert declared_standard(BASE) is None


@pytest.mark.parametrize(("standard", "field", "says"), [
    ({"layout": "公衆トイレ一覧", "edition": "nope"}, "standard.edition", "標準の版「nope」はありません"),
    ({"layout": "存在しない一覧", "edition": "自治体標準"}, "standard.layout", "存在しない一覧"),
    ({"edition": "自治体標準"}, "standard.layout", "必須"),
    ({"layout": "公衆トイレ一覧", "edition": 2019}, "standard.edition", "文字列"),
    ("AED設置箇所一覧@自治体標準", "standard", "「AED設置箇所一覧」はありません"),
    (5, "standard", "{layout, edition, missingValues}"),
    ({"layout": "公衆トイレ一覧", "version": "1"}, "standard.version", "不明な項目"),
    ({"layout": "公衆トイレ一覧", "edition": "2019", "missingValues": "ー"},
     "standard.missingValues", "マッピング"),
    ({"layout": "公衆トイレ一覧", "edition": "2019", "missingValues": {"色": ["ー"]}},
     "standard.missingValues.色", "列ではありません"),
    ({"layout": "公衆トイレ一覧", "edition": "2019", "missingValues": {"名称": [1]}},
     "standard.missingValues.名称", "文字列"),
])
def test_bad_declarations_name_the_key_path(standard: Any, field: str, says: str) -> None:
    found = errors(standard)
    assert any(f == field and says in ja for f, ja in found), found
    with pytest.raises(InvalidRequest) as exc:
        parse_description({**BASE, "standard": standard}, standard_check=standard_errors)
    assert field in {e["field"] for e in exc.value.details["errors"]}


def test_both_declarations_at_once_are_refused() -> None:
    assert ("standard", "standard と standard_type はどちらか一方だけ指定してください") in \
        errors("公衆トイレ一覧@2019", standard_type="公衆トイレ一覧")


def test_the_schema_is_checked_against_the_declared_edition() -> None:
    # the 2026 model's schema lacks columns that the 2019 layout requires
    schema_2026 = standards.get_standard("公衆トイレ一覧").table_schema()
    found = errors("公衆トイレ一覧@2019", schema=schema_2026)
    assert ("schema[住所]", "必須の列「住所」（「公衆トイレ一覧」の8列目）がありません") in found
    assert errors("公衆トイレ一覧@2026", schema=schema_2026) == []
    # the same schema declared as standard_type (2026) passes as before
    assert validate_description({**BASE, "standard_type": "公衆トイレ一覧", "schema": schema_2026},
                                standard_check=standard_errors) == []

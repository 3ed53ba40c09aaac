"""Tests for mesh/ids.py: 全国地方公共団体コード, 法人番号, node names and node identity URIs."""

from __future__ import annotations

import pytest

from mesh.errors import InvalidRequest
from mesh.ids import (
    ParticipantType,
    corporate_number_check_digit,
    local_government_check_digit,
    node_dns_name,
    node_identity_uri,
    parse_node_identity_uri,
    registry_dns_name,
    validate_corporate_number,
    validate_local_government_code,
    validate_node_name,
    validate_participant_id,
)

# ---- independent reference implementations (written from the published rules, not copied) --


def ref_local_government_check_digit(first_five: str) -> int:
    """総務省: weights 6,5,4,3,2; the check digit is the last digit of 11 - (sum mod 11)."""
    weights = [6, 5, 4, 3, 2]
    total = 0
    for i in range(5):
        total += int(first_five[i]) * weights[i]
    value = 11 - (total % 11)
    return value - 10 if value >= 10 else value


def ref_corporate_check_digit(base_twelve: str) -> int:
    """国税庁: 9 - (Σ Pn×Qn mod 9); Pn is the n-th digit from the right, Qn 1 if n odd else 2."""
    total = 0
    for i, ch in enumerate(base_twelve):  # i counts from the left
        n = len(base_twelve) - i  # position counted from the right, 1-based
        total += int(ch) * (1 if n % 2 == 1 else 2)
    return 9 - total % 9


PREFECTURES = {
    "010006": "北海道",
    "110001": "埼玉県",  # weighted sum ≡ 0 (mod 11): 11 - 0 = 11, check digit 1
    "130001": "東京都",
    "200000": "長野県",  # weighted sum ≡ 1 (mod 11): 11 - 1 = 10, check digit 0
    "270008": "大阪府",
    "470007": "沖縄県",
}
MUNICIPALITIES = {
    "011002": "札幌市",
    "131016": "千代田区",
    "271004": "大阪市",
    "282014": "姫路市",
    "282103": "加古川市",
}
CORPORATE_NUMBERS = {
    "7000012050002": "国税庁",
    "4000012090001": "check digit 4 by computation",
}


def _invalid(exc_info: pytest.ExceptionInfo[InvalidRequest], code: str) -> InvalidRequest:
    err = exc_info.value
    assert err.code == code
    return err


# ---- 全国地方公共団体コード ---------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(PREFECTURES))
def test_prefecture_codes_valid(code: str) -> None:
    assert validate_local_government_code(code) == code
    assert validate_local_government_code(code, ParticipantType.PREFECTURE) == code
    assert validate_participant_id(code, ParticipantType.PREFECTURE) == code
    assert validate_participant_id(code, "prefecture") == code


@pytest.mark.parametrize("code", sorted(MUNICIPALITIES))
def test_municipality_codes_valid(code: str) -> None:
    assert validate_local_government_code(code) == code
    assert validate_local_government_code(code, ParticipantType.MUNICIPALITY) == code
    assert validate_participant_id(code, ParticipantType.MUNICIPALITY) == code
    assert validate_participant_id(code, "municipality") == code


@pytest.mark.parametrize("code", sorted(PREFECTURES) + sorted(MUNICIPALITIES))
def test_check_digit_function_matches_known_codes(code: str) -> None:
    assert local_government_check_digit(code[:5]) == int(code[5])
    assert ref_local_government_check_digit(code[:5]) == int(code[5])


def test_check_digit_edge_remainders() -> None:
    # remainder 0 -> 11 -> last digit 1; remainder 1 -> 10 -> last digit 0
    assert local_government_check_digit("11000") == 1
    assert local_government_check_digit("20000") == 0


def test_prefecture_type_rejects_municipality_code() -> None:
    with pytest.raises(InvalidRequest) as ei:
        validate_participant_id("282014", ParticipantType.PREFECTURE)
    err = _invalid(ei, "invalid_participant_id")
    assert "282014" in err.message
    assert "municipality" in err.message
    assert err.message_ja


def test_municipality_type_rejects_prefecture_code() -> None:
    with pytest.raises(InvalidRequest) as ei:
        validate_participant_id("270008", "municipality")
    err = _invalid(ei, "invalid_participant_id")
    assert "270008" in err.message
    assert "prefecture" in err.message
    assert err.message_ja


@pytest.mark.parametrize("code", ["282015", "282010", "270009", "130000", "131011"])
def test_wrong_check_digit(code: str) -> None:
    expected = ref_local_government_check_digit(code[:5])
    assert int(code[5]) != expected
    with pytest.raises(InvalidRequest) as ei:
        validate_local_government_code(code)
    err = _invalid(ei, "invalid_participant_id")
    assert "check-digit rule" in err.message
    assert f"expected {expected}" in err.message
    assert err.message_ja
    assert "検査数字" in err.message_ja
    assert str(expected) in err.message_ja


@pytest.mark.parametrize("kind", [ParticipantType.PREFECTURE, ParticipantType.MUNICIPALITY])
def test_wrong_check_digit_via_participant_id(kind: ParticipantType) -> None:
    code = "270001" if kind == ParticipantType.PREFECTURE else "282019"
    with pytest.raises(InvalidRequest) as ei:
        validate_participant_id(code, kind)
    assert "check-digit rule" in _invalid(ei, "invalid_participant_id").message


@pytest.mark.parametrize("code", [
    "", "28201", "2820140", "28201a", "abcdef", "２８２０１４", "28201４", " 28201", "282014 ",
    "+28201", "-28201", "28 014", "2820.4", "٢٨٢٠١٤",  # Arabic-Indic digits: isdigit() but not ASCII
])
def test_wrong_length_or_non_digits(code: str) -> None:
    with pytest.raises(InvalidRequest) as ei:
        validate_local_government_code(code)
    err = _invalid(ei, "invalid_participant_id")
    assert "length rule" in err.message
    assert "6 ASCII digits" in err.message
    assert err.message_ja
    assert "桁数" in err.message_ja


@pytest.mark.parametrize("prefix", ["00000", "00123", "48000", "50000", "99000", "99999"])
def test_prefecture_part_out_of_range(prefix: str) -> None:
    code = prefix + str(ref_local_government_check_digit(prefix))  # check digit is right
    with pytest.raises(InvalidRequest) as ei:
        validate_local_government_code(code)
    err = _invalid(ei, "invalid_participant_id")
    assert "prefecture part" in err.message
    assert code[:2] in err.message
    assert err.message_ja


def test_prefecture_range_boundaries() -> None:
    for prefix in ("01000", "47000", "47201"):
        code = prefix + str(ref_local_government_check_digit(prefix))
        assert validate_local_government_code(code) == code


def test_exactly_one_check_digit_validates_for_each_prefix() -> None:
    prefixes = [f"{n:05d}" for n in range(1000, 48000, 97)]
    prefixes += ["01000", "11000", "20000", "47999", "28201", "27000"]
    assert len(prefixes) > 400
    for prefix in prefixes:
        valid = []
        for last in "0123456789":
            try:
                validate_local_government_code(prefix + last)
            except InvalidRequest as exc:
                assert exc.code == "invalid_participant_id"
            else:
                valid.append(last)
        assert valid == [str(ref_local_government_check_digit(prefix))], prefix


# ---- 法人番号 -------------------------------------------------------------------------------


@pytest.mark.parametrize("number", sorted(CORPORATE_NUMBERS))
@pytest.mark.parametrize("kind", ["private", "operator", ParticipantType.PRIVATE,
                                  ParticipantType.OPERATOR])
def test_corporate_numbers_valid(number: str, kind: str) -> None:
    assert validate_corporate_number(number) == number
    assert validate_participant_id(number, kind) == number
    assert corporate_number_check_digit(number[1:]) == int(number[0])
    assert ref_corporate_check_digit(number[1:]) == int(number[0])


def test_corporate_number_wrong_check_digit() -> None:
    with pytest.raises(InvalidRequest) as ei:
        validate_participant_id("8000012050002", "private")
    err = _invalid(ei, "invalid_participant_id")
    assert "check-digit rule" in err.message
    assert "expected 7" in err.message
    assert err.message_ja
    assert "7" in err.message_ja


@pytest.mark.parametrize("number", [
    "", "700001205000", "70000120500020", "７００００１２０５０００２", "7000012O50002",
    "700001205000x", " 700001205000",
])
def test_corporate_number_wrong_length_or_non_digits(number: str) -> None:
    with pytest.raises(InvalidRequest) as ei:
        validate_corporate_number(number)
    err = _invalid(ei, "invalid_participant_id")
    assert "length rule" in err.message
    assert "13 ASCII digits" in err.message
    assert err.message_ja


def test_exactly_one_corporate_check_digit_validates() -> None:
    bases = [f"{n:012d}" for n in range(0, 10**12, 7_777_777_777)]
    bases += ["000012050002", "999999999999", "123456789012"]
    for base in bases:
        valid = []
        for first in "0123456789":
            try:
                validate_corporate_number(first + base)
            except InvalidRequest as exc:
                assert exc.code == "invalid_participant_id"
            else:
                valid.append(first)
        expected = ref_corporate_check_digit(base)
        assert 1 <= expected <= 9  # 9 - (x mod 9) is never 0
        assert valid == [str(expected)], base


def test_local_government_code_is_not_a_corporate_number() -> None:
    with pytest.raises(InvalidRequest) as ei:
        validate_participant_id("282014", "private")
    assert "13 ASCII digits" in _invalid(ei, "invalid_participant_id").message
    with pytest.raises(InvalidRequest) as ei:
        validate_participant_id("7000012050002", "municipality")
    assert "6 ASCII digits" in _invalid(ei, "invalid_participant_id").message


# ---- participant types --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["city", "", "Prefecture", "PREFECTURE", "company"])
def test_unknown_participant_type(kind: str) -> None:
    with pytest.raises(InvalidRequest) as ei:
        validate_participant_id("282014", kind)
    err = ei.value
    # no specific code is set for this error, so it keeps the class default
    assert err.code == "invalid_request"
    assert "unknown participant type" in err.message
    assert repr(kind) in err.message
    for t in ParticipantType:
        assert t.value in err.message
    assert err.message_ja
    assert "種別" in err.message_ja


# ---- node names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["main", "node-1", "a", "0", "a-b-c", "a--b", "9lives",
                                  "a" * 63, "a" + "-" * 61 + "z"])
def test_valid_node_names(name: str) -> None:
    assert validate_node_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "-", "UPPER", "Main", "a" * 64, "a_b", "ノード",
                                  "a.b", "a b", " main", "main ", "main\n", "ｍａｉｎ", "node/1"])
def test_invalid_node_names(name: str) -> None:
    with pytest.raises(InvalidRequest) as ei:
        validate_node_name(name)
    err = _invalid(ei, "invalid_node_name")
    assert repr(name) in err.message
    assert "1-63" in err.message
    assert err.message_ja


# ---- node identity URIs and DNS names -----------------------------------------------------


@pytest.mark.parametrize("pid", ["282014", "270008", "7000012050002"])
@pytest.mark.parametrize("name", ["main", "node-1", "a" * 63, "0"])
def test_node_identity_uri_round_trip(pid: str, name: str) -> None:
    uri = node_identity_uri(pid, name)
    assert uri == f"urn:areamesh:org:{pid}:node:{name}"
    assert parse_node_identity_uri(uri) == (pid, name)


@pytest.mark.parametrize("uri", [
    "",
    "urn:areamesh:org:282014:node:",
    "urn:areamesh:org::node:main",
    "urn:areamesh:org:28201:node:main",
    "urn:areamesh:org:2820140:node:main",
    "urn:areamesh:org:70000120500021:node:main",
    "urn:areamesh:org:２８２０１４:node:main",
    "urn:areamesh:org:282014:node:Main",
    "urn:areamesh:org:282014:node:a_b",
    "urn:areamesh:org:282014:node:-a",
    "urn:areamesh:org:282014:node:a-",
    "urn:areamesh:org:282014:node:" + "a" * 64,
    "urn:areamesh:org:282014:node:main:extra",
    "urn:areamesh:org:282014:node:main\n",
    "urn:areamesh:org:282014:node:main ",
    " urn:areamesh:org:282014:node:main",
    "xurn:areamesh:org:282014:node:main",
    "URN:AREAMESH:ORG:282014:NODE:main",
    "urn:areamesh:org:282014:main",
    "urn:areamesh:mesh:test:registry",
    "https://282014.example/node/main",
])
def test_parse_node_identity_uri_rejects_malformed(uri: str) -> None:
    assert parse_node_identity_uri(uri) is None


def test_dns_names() -> None:
    assert node_dns_name("282014", "main", "test") == "main.282014.test.areamesh.invalid"
    assert registry_dns_name("test") == "registry.test.areamesh.invalid"

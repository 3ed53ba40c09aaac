"""Participant ids: 全国地方公共団体コード and 法人番号, with their check digits.

- 全国地方公共団体コード (local government code, 総務省): 6 digits. The first two are the
  prefecture (01–47), the next three the municipality (000 for the prefecture itself), the last
  is a check digit: multiply the five digits by 6, 5, 4, 3, 2, sum, take the remainder mod 11,
  and the check digit is the last digit of (11 − remainder). 270008 大阪府, 282014 姫路市.
- 法人番号 (corporate number, 国税庁): 13 digits; the first is the check digit
  9 − (Σ Pn × Qn mod 9) over the other 12, where Pn is the n-th digit counted from the right
  and Qn is 1 for odd n, 2 for even n.
"""

from __future__ import annotations

import re
from enum import StrEnum

from mesh.errors import InvalidRequest


class ParticipantType(StrEnum):
    PREFECTURE = "prefecture"
    MUNICIPALITY = "municipality"
    PRIVATE = "private"
    OPERATOR = "operator"


LOCAL_GOVERNMENT_TYPES = {ParticipantType.PREFECTURE, ParticipantType.MUNICIPALITY}
# \Z, not $: "$" also matches before a trailing newline, so "main\n" would pass.
NODE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
MESH_ID = NODE_NAME


def local_government_check_digit(first_five: str) -> int:
    total = sum(int(d) * w for d, w in zip(first_five, (6, 5, 4, 3, 2), strict=True))
    return (11 - total % 11) % 10


def corporate_number_check_digit(base_twelve: str) -> int:
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(base_twelve), start=1))
    return 9 - total % 9


def validate_local_government_code(code: str, kind: ParticipantType | None = None) -> str:
    """Return ``code`` if it is a valid 全国地方公共団体コード, else raise ``InvalidRequest``.

    With ``kind`` PREFECTURE the code must be a prefecture's (municipality part 000); with
    MUNICIPALITY it must not be.
    """
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        raise InvalidRequest(
            f"local government code {code!r} must be exactly 6 ASCII digits (length rule)",
            message_ja=f"全国地方公共団体コード {code!r} は半角数字6桁でなければなりません（桁数の規則）",
            code="invalid_participant_id")
    expected = local_government_check_digit(code[:5])
    if int(code[5]) != expected:
        raise InvalidRequest(
            f"local government code {code}: check digit is {code[5]}, expected {expected} "
            "(check-digit rule: weights 6,5,4,3,2, mod 11)",
            message_ja=(f"全国地方公共団体コード {code} の検査数字が誤っています"
                        f"（{code[5]} ではなく {expected}）"),
            code="invalid_participant_id")
    prefecture = int(code[:2])
    if not 1 <= prefecture <= 47:
        raise InvalidRequest(
            f"local government code {code}: prefecture part {code[:2]} is not 01–47",
            message_ja=f"全国地方公共団体コード {code} の都道府県部分 {code[:2]} は01〜47ではありません",
            code="invalid_participant_id")
    is_prefecture = code[2:5] == "000"
    if kind == ParticipantType.PREFECTURE and not is_prefecture:
        raise InvalidRequest(
            f"{code} is a municipality's code; a prefecture's code ends in 000 plus the check digit",
            message_ja=f"{code} は市区町村のコードです。都道府県コードは「000」と検査数字で終わります",
            code="invalid_participant_id")
    if kind == ParticipantType.MUNICIPALITY and is_prefecture:
        raise InvalidRequest(
            f"{code} is a prefecture's code, not a municipality's",
            message_ja=f"{code} は都道府県のコードで、市区町村のコードではありません",
            code="invalid_participant_id")
    return code


def validate_corporate_number(number: str) -> str:
    """Return ``number`` if it is a valid 法人番号, else raise ``InvalidRequest``."""
    if not (len(number) == 13 and number.isascii() and number.isdigit()):
        raise InvalidRequest(
            f"corporate number {number!r} must be exactly 13 ASCII digits (length rule)",
            message_ja=f"法人番号 {number!r} は半角数字13桁でなければなりません（桁数の規則）",
            code="invalid_participant_id")
    expected = corporate_number_check_digit(number[1:])
    if int(number[0]) != expected:
        raise InvalidRequest(
            f"corporate number {number}: check digit (first digit) is {number[0]}, expected "
            f"{expected} (check-digit rule: 9 - weighted sum mod 9)",
            message_ja=(f"法人番号 {number} の検査用数字（先頭桁）が誤っています"
                        f"（{number[0]} ではなく {expected}）"),
            code="invalid_participant_id")
    return number


def validate_participant_id(pid: str, kind: ParticipantType | str) -> str:
    """Validate ``pid`` by the rule its participant type demands."""
    try:
        kind = ParticipantType(kind)
    except ValueError:
        raise InvalidRequest(
            f"unknown participant type {kind!r}; use one of "
            + ", ".join(t.value for t in ParticipantType),
            message_ja=f"参加者の種別 {kind!r} は不明です") from None
    if kind in LOCAL_GOVERNMENT_TYPES:
        return validate_local_government_code(pid, kind)
    return validate_corporate_number(pid)


def validate_node_name(name: str) -> str:
    """A node name is a DNS label: 1–63 of a–z, 0–9 and '-', not starting or ending with '-'."""
    if not NODE_NAME.match(name):
        raise InvalidRequest(
            f"node name {name!r} must be 1-63 lowercase letters, digits or '-' "
            "(no leading or trailing '-')",
            message_ja=f"ノード名 {name!r} は半角英小文字・数字・ハイフンの1〜63文字にしてください",
            code="invalid_node_name")
    return name


def node_identity_uri(participant_id: str, node_name: str) -> str:
    """The URI SAN that names a node: ``urn:areamesh:org:<id>:node:<name>``."""
    return f"urn:areamesh:org:{participant_id}:node:{node_name}"


def node_dns_name(participant_id: str, node_name: str, mesh_id: str) -> str:
    """The DNS SAN of a node certificate. Never resolved: peers dial an IP and use this name as
    the TLS target name, so the TLS layer itself checks they reached the node they meant."""
    return f"{node_name}.{participant_id}.{mesh_id}.areamesh.invalid"


def registry_dns_name(mesh_id: str) -> str:
    return f"registry.{mesh_id}.areamesh.invalid"


# [0-9], not \d (which also matches full-width and other Unicode digits); the node part
# follows the node-name rule; \Z rejects a trailing newline.
_NODE_URI = re.compile(r"^urn:areamesh:org:([0-9]{6}|[0-9]{13})"
                       r":node:([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\Z")


def parse_node_identity_uri(uri: str) -> tuple[str, str] | None:
    """``(participant_id, node_name)`` from a node URI, or None if ``uri`` is not one."""
    m = _NODE_URI.match(uri)
    return (m.group(1), m.group(2)) if m else None

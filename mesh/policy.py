"""Usage policies of dataset offers: an ODRL-like model, its validation and evaluation (DESIGN §6).

``parse_policy`` turns an offer's ``policy`` JSON into a ``Policy`` or raises ``PolicyError`` naming
the path of the first problem. ``evaluate`` checks a contract request against it: the request is
allowed when every constraint of at least one permission holds; a refusal lists which constraint
failed on which claim, in English and Japanese. The model is described in docs/policies.md.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mesh.errors import InvalidRequest, PermissionDenied
from mesh.ids import (
    LOCAL_GOVERNMENT_TYPES,
    MESH_ID,
    ParticipantType,
    validate_corporate_number,
    validate_local_government_code,
)

LIMITS = {"permissions": 50, "constraints": 50, "duties": 20, "items": 1000, "text": 200}
OPERATORS = ("eq", "neq", "lt", "lteq", "gt", "gteq", "isAnyOf", "isNoneOf", "isAllOf")
_EQUALITY = ("eq", "neq", "isAnyOf", "isNoneOf")
# leftOperand -> the operators that make sense for it. isAllOf is a known operator but needs a
# set-valued leftOperand, and every claim of a request has exactly one value.
PERMISSION_OPERANDS: dict[str, tuple[str, ...]] = {
    "purpose": _EQUALITY, "consumerType": _EQUALITY, "consumerId": _EQUALITY, "spatial": _EQUALITY,
    "dateTime": ("lt", "lteq", "gt", "gteq"), "transferCount": ("lt", "lteq"),
    "recordCount": ("lt", "lteq"), "identityAssurance": ("eq", "gt", "gteq"), "consent": ("eq",),
    "mesh": _EQUALITY,
}
DUTY_OPERANDS: dict[str, tuple[str, ...]] = {"elapsedTime": ("eq", "lteq")}
PERMISSION_ACTIONS = ("use",)
DUTY_ACTIONS = ("delete", "reportUsage", "attribute")
SPATIAL_KEYWORDS = ("sameMunicipality", "samePrefecture")
TYPE_JA = {ParticipantType.PREFECTURE: "都道府県", ParticipantType.MUNICIPALITY: "市区町村",
           ParticipantType.PRIVATE: "民間事業者", ParticipantType.OPERATOR: "運営組織"}
# A lenient reader of ODRL; these keys carry no meaning here and are ignored.
_IGNORED_KEYS = ("uid", "description")
_DURATION = re.compile(r"P(?:([0-9]{1,6})W)?(?:([0-9]{1,6})D)?"
                       r"(?:T(?:([0-9]{1,6})H)?(?:([0-9]{1,6})M)?(?:([0-9]{1,6})S)?)?\Z")


class PolicyError(InvalidRequest):
    """A document that is not a valid policy; ``path`` names the offending part."""

    code = "invalid_policy"

    def __init__(self, path: str, message: str, message_ja: str) -> None:
        super().__init__(f"{path}: {message}", message_ja=f"{path}: {message_ja}",
                         details={"path": path})
        self.path = path


# ---- the model ------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Constraint:
    left_operand: str
    operator: str
    right_operand: Any  # str | int | bool, or tuple[str, ...] for isAnyOf / isNoneOf
    path: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"leftOperand": self.left_operand, "operator": self.operator,
                "rightOperand": _json(self.right_operand)}


@dataclass(frozen=True)
class Permission:
    action: str
    constraints: tuple[Constraint, ...] = ()
    path: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "constraints": [c.to_json() for c in self.constraints]}

    @property
    def requires_consent(self) -> bool:
        """``consent eq true``: records leave only for residents who consented (personal data)."""
        return any(c.left_operand == "consent" and c.right_operand is True for c in self.constraints)


@dataclass(frozen=True)
class Duty:
    """An obligation the consumer accepts with the contract, e.g. ``delete`` within P90D."""

    action: str
    constraints: tuple[Constraint, ...] = ()
    path: str = field(default="", compare=False)

    @property
    def within(self) -> timedelta | None:
        """The duty's deadline after the transfer (its elapsedTime), if it has one."""
        limits = [_parse_duration(c.right_operand, c.path) for c in self.constraints
                  if c.left_operand == "elapsedTime"]
        return min(limits) if limits else None

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "constraints": [c.to_json() for c in self.constraints]}


@dataclass(frozen=True)
class Policy:
    permissions: tuple[Permission, ...]
    duties: tuple[Duty, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"permissions": [p.to_json() for p in self.permissions],
                "duties": [d.to_json() for d in self.duties]}


# ---- parsing --------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _hint(value: Any, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1) if isinstance(value, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(raw: Mapping, path: str, known: tuple[str, ...]) -> None:
    for key in raw:
        if key in known or key in _IGNORED_KEYS or (isinstance(key, str) and key.startswith("@")):
            continue
        if key == "prohibitions":
            raise PolicyError(_join(path, key), "prohibitions are not supported; express them as "
                              "neq or isNoneOf constraints of the permissions",
                              "禁止（prohibitions）には対応していません。許可の制約（neq・isNoneOf）で表してください")
        raise PolicyError(_join(path, str(key)), f"unknown key {key!r}{_hint(key, known)}; "
                          f"allowed: {', '.join(known)}",
                          f"不明なキー {key!r} です（使用可能: {'、'.join(known)}）")


def _list(raw: Mapping, key: str, path: str, *, required: bool = False) -> list:
    where = _join(path, key)
    if key not in raw:
        if required:
            raise PolicyError(where, f"is required (use [] to {'allow nothing' if path == '' else 'omit'})",
                              "必須です")
        return []
    value = raw[key]
    if not isinstance(value, list):
        raise PolicyError(where, "must be a list", "リストで指定してください")
    if len(value) > LIMITS[key]:
        raise PolicyError(where, f"at most {LIMITS[key]} entries", f"{LIMITS[key]}件以内にしてください")
    return value


def parse_policy(doc: Any) -> Policy:
    """Validate the JSON of a policy and return its model; raise ``PolicyError`` naming the path."""
    if not isinstance(doc, Mapping):
        raise PolicyError("policy", "must be a mapping with a permissions list",
                          "permissions を含むマッピングで指定してください")
    _check_keys(doc, "", ("permissions", "duties"))
    permissions = []
    for i, raw in enumerate(_list(doc, "permissions", "", required=True)):
        action, constraints = _parse_rule(raw, f"permissions[{i}]", PERMISSION_ACTIONS, PERMISSION_OPERANDS)
        permission = Permission(action, constraints, f"permissions[{i}]")
        _check_assurance_needs_consent(permission)
        permissions.append(permission)
    duties = []
    for i, raw in enumerate(_list(doc, "duties", "")):
        action, constraints = _parse_rule(raw, f"duties[{i}]", DUTY_ACTIONS, DUTY_OPERANDS)
        duties.append(Duty(action, constraints, f"duties[{i}]"))
    return Policy(tuple(permissions), tuple(duties))


def _check_assurance_needs_consent(permission: Permission) -> None:
    """``identityAssurance`` is about residents (身元確認・当人認証 of a natural person, 5-10): it
    is judged on each resident's record, which only a ``consent eq true`` permission has. An
    organisation has no such levels (its mTLS certificate and the registry's certification prove
    who it is), so the constraint alone could never hold and is refused here, at publish time."""
    if permission.requires_consent:
        return
    for c in permission.constraints:
        if c.left_operand == "identityAssurance":
            raise PolicyError(
                c.path, "identityAssurance applies to residents' records and needs "
                "{\"leftOperand\": \"consent\", \"operator\": \"eq\", \"rightOperand\": true} in the same "
                "permission; a consuming organisation has no 身元確認/当人認証 level, so without consent "
                "this constraint could never be met (restrict organisations with consumerType or "
                "consumerId)",
                "identityAssurance（本人確認レベル）は住民のレコードに適用されるため、"
                "同じ許可に consent eq true が必要です。"
                "利用者の組織には身元確認・当人認証レベルがないため、同意なしではこの制約は満たせません"
                "（組織の制限には consumerType・consumerId を使ってください）")


def _parse_rule(raw: Any, path: str, actions: tuple[str, ...], operands: dict[str, tuple[str, ...]]
                ) -> tuple[str, tuple[Constraint, ...]]:
    if not isinstance(raw, Mapping):
        raise PolicyError(path, "must be a mapping with an action",
                          "action を含むマッピングで指定してください")
    _check_keys(raw, path, ("action", "constraints"))
    action = raw.get("action")
    if action not in actions:
        raise PolicyError(f"{path}.action", f"action {action!r} is not one of {', '.join(actions)}"
                          f"{_hint(action, actions)}",
                          f"action {action!r} は不明です（使用可能: {'、'.join(actions)}）")
    return action, tuple(_parse_constraint(c, f"{path}.constraints[{j}]", operands)
                         for j, c in enumerate(_list(raw, "constraints", path)))


def _parse_constraint(raw: Any, path: str, operands: dict[str, tuple[str, ...]]) -> Constraint:
    if not isinstance(raw, Mapping):
        raise PolicyError(path, "must be a mapping of leftOperand, operator and rightOperand",
                          "leftOperand・operator・rightOperand のマッピングで指定してください")
    keys = ("leftOperand", "operator", "rightOperand")
    _check_keys(raw, path, keys)
    for key in keys:
        if key not in raw:
            raise PolicyError(f"{path}.{key}", "is required", "必須です")
    left, op = raw["leftOperand"], raw["operator"]
    if not isinstance(left, str) or left not in operands:
        known = left if isinstance(left, str) else ""
        where = ("it applies to duties, not permissions" if known in DUTY_OPERANDS else
                 "it applies to permissions, not duties" if known in PERMISSION_OPERANDS else "")
        raise PolicyError(f"{path}.leftOperand", f"unknown leftOperand {left!r}{_hint(left, list(operands))}"
                          f"{'; ' + where if where else ''}; allowed here: {', '.join(operands)}",
                          f"leftOperand {left!r} はここでは使えません（使用可能: {'、'.join(operands)}）")
    if op not in OPERATORS:
        raise PolicyError(f"{path}.operator", f"unknown operator {op!r}{_hint(op, OPERATORS)}; "
                          f"known: {', '.join(OPERATORS)}", f"演算子 {op!r} は不明です")
    if op not in operands[left]:
        why = ("it needs a set-valued leftOperand and a request has one " + left) if op == "isAllOf" else ""
        raise PolicyError(f"{path}.operator", f"operator {op!r} does not apply to {left}"
                          f"{': ' + why if why else ''}; use one of {', '.join(operands[left])}",
                          f"演算子 {op!r} は {left} には使えません（使用可能: {'、'.join(operands[left])}）")
    return Constraint(left, op, _parse_right(left, op, raw["rightOperand"], f"{path}.rightOperand"), path)


def _parse_right(left: str, op: str, value: Any, path: str) -> Any:
    if left == "dateTime":
        _parse_datetime(value, path)
    elif left in ("transferCount", "recordCount"):
        _integer(value, path, 0, None)
    elif left == "identityAssurance":
        _integer(value, path, 1, 3)
    elif left == "consent":
        if not isinstance(value, bool):
            raise PolicyError(path, "must be true or false", "true または false で指定してください")
    elif left == "elapsedTime":
        _parse_duration(value, path)
    else:
        item = {"purpose": _text, "consumerType": _participant_type, "consumerId": _participant_id,
                "spatial": _area, "mesh": _mesh_id}[left]
        if op in ("isAnyOf", "isNoneOf"):
            if not isinstance(value, list) or not value:
                raise PolicyError(path, f"must be a non-empty list for {op}",
                                  f"{op} には空でないリストを指定してください")
            if len(value) > LIMITS["items"]:
                raise PolicyError(path, f"at most {LIMITS['items']} entries",
                                  f"{LIMITS['items']}件以内にしてください")
            return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))
        if isinstance(value, list):
            raise PolicyError(path, f"{op} takes a single value; use isAnyOf or isNoneOf for a list",
                              f"{op} には値を1つ指定してください（リストには isAnyOf・isNoneOf を使います）")
        return item(value, path)
    return value


def _integer(value: Any, path: str, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(path, f"must be an integer, not {value!r}", "整数で指定してください")
    if value < low or (high is not None and value > high):
        span = f"{low}–{high}" if high is not None else f"at least {low}"
        what = " (身元確認/当人認証レベル)" if high == 3 else ""
        raise PolicyError(path, f"{value} is out of range: {span}{what}",
                          f"{value} は範囲外です（{low}〜{high}）" if high is not None
                          else f"{low}以上にしてください")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > LIMITS["text"]:
        raise PolicyError(path, f"must be a non-empty string of at most {LIMITS['text']} characters",
                          f"{LIMITS['text']}文字以内の空でない文字列で指定してください")
    return value


def _participant_type(value: Any, path: str) -> str:
    if not isinstance(value, str) or value not in TYPE_JA:
        raise PolicyError(path, f"unknown consumer type {value!r}{_hint(value, [t.value for t in TYPE_JA])}; "
                          f"use one of {', '.join(TYPE_JA)}", f"利用者の種別 {value!r} は不明です")
    return value


def _participant_id(value: Any, path: str) -> str:
    if not isinstance(value, str) or len(value) not in (6, 13):
        raise PolicyError(path, f"{value!r} is not a participant id (6-digit 全国地方公共団体コード or "
                          "13-digit 法人番号)",
                          f"{value!r} は参加者ID（団体コード6桁・法人番号13桁）ではありません")
    try:
        return validate_local_government_code(value) if len(value) == 6 else validate_corporate_number(value)
    except InvalidRequest as exc:
        raise PolicyError(path, exc.message, exc.message_ja or exc.message) from None


def _mesh_id(value: Any, path: str) -> str:
    if not isinstance(value, str) or not MESH_ID.match(value):
        raise PolicyError(path, f"{value!r} is not a mesh id (a DNS label such as osaka)",
                          f"{value!r} はメッシュIDではありません（例: osaka）")
    return value


def _area(value: Any, path: str) -> str:
    if value in SPATIAL_KEYWORDS:
        return value
    if isinstance(value, str) and len(value) == 2 and value.isascii() and value.isdigit() \
            and 1 <= int(value) <= 47:
        return value
    if isinstance(value, str) and len(value) == 6:
        try:
            return validate_local_government_code(value)
        except InvalidRequest as exc:
            raise PolicyError(path, exc.message, exc.message_ja or exc.message) from None
    raise PolicyError(path, f"{value!r} is not an area: use sameMunicipality, samePrefecture, a 2-digit "
                      "prefecture code (01–47) or a 6-digit 全国地方公共団体コード",
                      f"{value!r} は地域として使えません"
                      "（sameMunicipality・samePrefecture・都道府県コード2桁・団体コード6桁）")


def _parse_datetime(value: Any, path: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) and value.isascii() else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise PolicyError(path, f"{value!r} is not an ISO 8601 date-time with an offset, "
                          "e.g. 2027-03-31T23:59:59+09:00",
                          f"{value!r} はタイムゾーン付きの ISO 8601 日時ではありません"
                          "（例: 2027-03-31T23:59:59+09:00）")
    return parsed


def _parse_duration(value: Any, path: str) -> timedelta:
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None or value in ("P", "PT") or value.endswith("T"):
        years = isinstance(value, str) and re.match(r"P[^T]*[YM]", value)
        why = "; years and months have no fixed length, use days (P365D)" if years else ""
        raise PolicyError(path, f"{value!r} is not an ISO 8601 duration such as P90D or PT12H{why}",
                          f"{value!r} は ISO 8601 の期間（例: P90D）ではありません（年・月は日数で指定）")
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


# ---- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyContext:
    """The claims a request is judged on: identity from the mTLS certificate and the registry's
    participant record, the declared purpose, and the contract's usage so far. There are no
    identity assurance levels here: those belong to residents and are judged per record."""

    consumer_id: str
    consumer_type: str
    purpose: str | None
    provider_id: str
    now: datetime
    transfers_so_far: int = 0
    records_so_far: int = 0
    records_requested: int | None = None
    #: the consumer's mesh and the provider's: they differ for a consumer of a federated mesh,
    #: who is refused by every permission without a ``mesh`` constraint (federation only
    #: crosses where the provider said so); "" for both means this mesh
    consumer_mesh: str = ""
    provider_mesh: str = ""

    def __post_init__(self) -> None:
        if self.now.utcoffset() is None:
            raise ValueError("PolicyContext.now must be timezone-aware")
        if self.consumer_type not in TYPE_JA:
            raise ValueError(f"unknown consumer_type {self.consumer_type!r}")
        if min(self.transfers_so_far, self.records_so_far, self.records_requested or 0) < 0:
            raise ValueError("counts must not be negative")


@dataclass(frozen=True)
class ConstraintFailure:
    path: str
    left_operand: str | None
    operator: str | None
    expected: Any
    actual: Any
    message: str
    message_ja: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "leftOperand": self.left_operand, "operator": self.operator,
                "expected": self.expected, "actual": self.actual, "message": self.message,
                "message_ja": self.message_ja}


@dataclass(frozen=True)
class Decision:
    """``permission_index`` is the permission that allowed the request or, when refused, the
    closest one (fewest failures), whose failures are listed. ``max_records`` caps the transfer
    when the permission limits recordCount; ``requires_consent`` routes it through the consent filter.
    ``record_assurance``: on personal data, the permission's identityAssurance constraints, which
    apply to each resident's record at transfer time (``residents_levels_meet``), not to the request."""

    allowed: bool
    permission_index: int | None
    failures: list[ConstraintFailure]
    duties: list[Duty]
    requires_consent: bool
    max_records: int | None = None
    record_assurance: tuple[Constraint, ...] = ()

    @property
    def message(self) -> str:
        return "; ".join(f.message for f in self.failures) or "allowed"

    @property
    def message_ja(self) -> str:
        return "。".join(f.message_ja for f in self.failures) or "許可されています"

    def to_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "permission_index": self.permission_index,
                "failures": [f.to_json() for f in self.failures],
                "duties": [d.to_json() for d in self.duties],
                "requires_consent": self.requires_consent, "max_records": self.max_records,
                "record_assurance": [c.to_json() for c in self.record_assurance]}

    def denial(self) -> PermissionDenied:
        """The error to send the consumer when the request is refused."""
        return PermissionDenied(f"usage policy refused the request: {self.message}",
                                message_ja=f"利用ポリシーにより拒否されました：{self.message_ja}",
                                code="policy_denied", details=self.to_json())


def evaluate(policy: Policy, ctx: PolicyContext) -> Decision:
    """Allowed when every constraint of some permission holds (the first such one is used)."""
    if not policy.permissions:
        failure = ConstraintFailure("permissions", None, None, None, None, "the policy grants no permission",
                                    "このポリシーはいかなる利用も許可していません")
        return Decision(False, None, [failure], [], False)
    closest: tuple[int, list[ConstraintFailure]] | None = None
    for i, permission in enumerate(policy.permissions):
        per_record = tuple(c for c in permission.constraints if c.left_operand == "identityAssurance"
                           ) if permission.requires_consent else ()
        failures = [f for c in permission.constraints
                    if c not in per_record and (f := _CHECKS[c.left_operand](c, ctx))]
        if ctx.consumer_mesh != ctx.provider_mesh and permission.requires_consent:
            failures.append(ConstraintFailure(
                permission.path or f"permissions[{i}]", "mesh", None, None, ctx.consumer_mesh,
                f"personal data does not cross meshes: residents' consents are recorded per mesh, "
                f"and the consumer belongs to federated mesh {ctx.consumer_mesh!r}",
                f"個人データはメッシュを越えて提供できません（住民の同意はメッシュごとに記録されて"
                f"おり、利用者は連携先メッシュ「{ctx.consumer_mesh}」に属しています）"))
        elif ctx.consumer_mesh != ctx.provider_mesh and \
                not any(c.left_operand == "mesh" for c in permission.constraints):
            failures.append(ConstraintFailure(
                permission.path or f"permissions[{i}]", "mesh", None, None, ctx.consumer_mesh,
                f"the consumer belongs to federated mesh {ctx.consumer_mesh!r}; this permission "
                "names no mesh, so it is for this mesh's participants only",
                f"利用者は連携先メッシュ「{ctx.consumer_mesh}」に属しています。この許可はメッシュを"
                "指定していないため、このメッシュの参加者のみが対象です"))
        if not failures:
            caps = [_remaining_records(c, ctx) for c in permission.constraints
                    if c.left_operand == "recordCount"]
            return Decision(True, i, [], list(policy.duties), permission.requires_consent,
                            min(caps) if caps else None, per_record)
        if closest is None or len(failures) < len(closest[1]):
            closest = (i, failures)
    assert closest is not None
    return Decision(False, closest[0], closest[1], [], False)


_COMPARE = {"eq": lambda a, b: a == b, "neq": lambda a, b: a != b, "lt": lambda a, b: a < b,
            "lteq": lambda a, b: a <= b, "gt": lambda a, b: a > b, "gteq": lambda a, b: a >= b,
            "isAnyOf": lambda a, b: a in b, "isNoneOf": lambda a, b: a not in b}


def _fail(c: Constraint, actual: Any, message: str, message_ja: str) -> ConstraintFailure:
    return ConstraintFailure(c.path, c.left_operand, c.operator, _json(c.right_operand), actual,
                             message, message_ja)


_VALUE_TERMS = {  # leftOperand -> (English name, Japanese name, Japanese noun for the allowed values)
    "purpose": ("purpose", "利用目的", "目的"),
    "consumerType": ("consumer type", "利用者の種別", "種別"),
    "consumerId": ("consumer", "利用者ID", "ID"),
}


def _check_value(c: Constraint, ctx: PolicyContext) -> ConstraintFailure | None:
    actual = {"purpose": ctx.purpose, "consumerType": str(ctx.consumer_type),
              "consumerId": ctx.consumer_id}[c.left_operand]
    en, ja, noun = _VALUE_TERMS[c.left_operand]
    if actual is None:  # an undeclared purpose fails even a deny-list: it could be anything
        return _fail(c, None, f"{en} is not declared; the policy requires {c.operator} "
                     f"{_json(c.right_operand)!r}", f"{ja}が申告されていません")
    if _COMPARE[c.operator](actual, c.right_operand):
        return None
    def show(v: str) -> str:
        return TYPE_JA.get(v, v) if c.left_operand == "consumerType" else v
    right = c.right_operand
    listed = "、".join(show(v) for v in right) if isinstance(right, tuple) else show(right)
    a = show(actual)
    message, message_ja = {
        "eq": (f"{en} {actual!r} is not {right!r}", f"{ja}「{a}」は許可された{noun}「{listed}」と異なります"),
        "neq": (f"{en} {actual!r} is excluded (neq {right!r})", f"{ja}「{a}」は除外されています"),
        "isAnyOf": (f"{en} {actual!r} is not one of {list(right)!r}",
                    f"{ja}「{a}」は許可された{noun}（{listed}）に含まれません"),
        "isNoneOf": (f"{en} {actual!r} is one of the excluded {list(right)!r}",
                     f"{ja}「{a}」は除外された{noun}（{listed}）に含まれます"),
    }[c.operator]
    return _fail(c, actual, message, message_ja)


def _is_local_government_code(pid: str) -> bool:
    return len(pid) == 6 and pid.isascii() and pid.isdigit()


def _area_matches(entry: str, area: str | None, provider: str) -> bool:
    if area is None:
        return False
    if entry == "sameMunicipality":
        return _is_local_government_code(provider) and area == provider
    if entry == "samePrefecture":
        return _is_local_government_code(provider) and area[:2] == provider[:2]
    return area[:2] == entry if len(entry) == 2 else area == entry


def _describe_area(entry: str, provider: str) -> tuple[str, str]:
    lg = _is_local_government_code(provider)
    if entry == "samePrefecture":
        if lg:
            return f"the provider's prefecture ({provider[:2]})", f"提供者と同じ都道府県（{provider[:2]}）"
        return (f"the provider's prefecture (none: provider {provider} is not a local government)",
                f"提供者と同じ都道府県（提供者 {provider} は地方公共団体ではありません）")
    if entry == "sameMunicipality":
        return (f"the provider itself ({provider})", f"提供者と同じ団体（{provider}）")
    return (f"prefecture {entry}", f"都道府県コード{entry}") if len(entry) == 2 else (entry, entry)


def _check_spatial(c: Constraint, ctx: PolicyContext) -> ConstraintFailure | None:
    area = ctx.consumer_id if ctx.consumer_type in LOCAL_GOVERNMENT_TYPES \
        and _is_local_government_code(ctx.consumer_id) else None
    entries = c.right_operand if isinstance(c.right_operand, tuple) else (c.right_operand,)
    matched = any(_area_matches(e, area, ctx.provider_id) for e in entries)
    positive = c.operator in ("eq", "isAnyOf")
    if matched == positive:
        return None
    described = [_describe_area(e, ctx.provider_id) for e in entries]
    where, where_ja = ", ".join(d[0] for d in described), "、".join(d[1] for d in described)
    if area is None:
        return _fail(c, ctx.consumer_id, f"consumer {ctx.consumer_id} ({ctx.consumer_type}) is not a local "
                     f"government, so it is not in {where}; a provider admits it by naming it in a "
                     "consumerId constraint of another permission",
                     f"利用者（{ctx.consumer_id}）は地方公共団体ではないため、地域の条件（{where_ja}）を満たしません")
    if positive:
        return _fail(c, ctx.consumer_id, f"consumer {area} (prefecture {area[:2]}) is not in {where}",
                     f"利用者（{area}、都道府県コード{area[:2]}）は許可された地域（{where_ja}）に含まれません")
    return _fail(c, ctx.consumer_id, f"consumer {area} is in an excluded area: {where}",
                 f"利用者（{area}）は除外された地域（{where_ja}）に含まれます")


def _check_datetime(c: Constraint, ctx: PolicyContext) -> ConstraintFailure | None:
    bound = _parse_datetime(c.right_operand, c.path)
    if _COMPARE[c.operator](ctx.now, bound):
        return None
    now = ctx.now.astimezone(bound.tzinfo).isoformat()
    rel, rel_ja = {"lt": ("before", "より前"), "lteq": ("at or before", "以前"),
                   "gt": ("after", "より後"), "gteq": ("at or after", "以降")}[c.operator]
    if c.operator in ("lt", "lteq"):
        return _fail(c, ctx.now.isoformat(), f"the policy's validity has ended: now {now} is not {rel} "
                     f"{c.right_operand}",
                     f"利用期間が終了しています（現在 {now}、利用期限は {c.right_operand} {rel_ja}）")
    return _fail(c, ctx.now.isoformat(), f"the policy is not valid yet: now {now} is not {rel} "
                 f"{c.right_operand}",
                 f"利用期間の開始前です（現在 {now}、利用開始は {c.right_operand} {rel_ja}）")


def _limit_text(c: Constraint, unit_ja: str) -> tuple[str, str]:
    n = c.right_operand
    return ((f"at most {n:,}", f"{n:,}{unit_ja}以下") if c.operator == "lteq" else
            (f"fewer than {n:,}", f"{n:,}{unit_ja}未満"))


def _check_count(c: Constraint, ctx: PolicyContext) -> ConstraintFailure | None:
    if c.left_operand == "transferCount":
        so_far, this, total = ctx.transfers_so_far, "this one", ctx.transfers_so_far + 1
    else:
        requested = ctx.records_requested
        so_far = ctx.records_so_far
        this = f"{requested:,} requested" if requested is not None else "a request of unstated size (≥ 1)"
        total = so_far + (requested if requested is not None else 1)
    if _COMPARE[c.operator](total, c.right_operand):
        return None
    if c.left_operand == "transferCount":
        limit, limit_ja = _limit_text(c, "回")
        return _fail(c, total, f"transfer count would reach {total:,} ({so_far:,} so far + {this}), over the "
                     f"limit of {limit}",
                     f"転送回数が上限を超えます（これまで{so_far:,}回＋今回1回＝{total:,}回、上限{limit_ja}）")
    limit, limit_ja = _limit_text(c, "件")
    this_ja = f"{ctx.records_requested:,}件" if ctx.records_requested is not None else "件数未指定（1件以上）"
    return _fail(c, total, f"record count would reach {total:,} ({so_far:,} so far + {this}), over the "
                 f"limit of {limit}",
                 f"レコード数が上限を超えます（これまで{so_far:,}件＋今回{this_ja}＝{total:,}件、上限{limit_ja}）")


def _remaining_records(c: Constraint, ctx: PolicyContext) -> int:
    return c.right_operand - ctx.records_so_far - (1 if c.operator == "lt" else 0)


def _check_assurance(c: Constraint, ctx: PolicyContext) -> ConstraintFailure | None:
    """Reached only by a ``Policy`` built without ``parse_policy`` (which refuses identityAssurance
    outside a consent permission): an organisation has no assurance level, so it never holds."""
    return _fail(c, None, "identityAssurance applies only to residents' records under consent eq true; "
                 "the consuming organisation has no 身元確認/当人認証 level",
                 "本人確認レベルは同意（consent eq true）のもとで住民のレコードにのみ適用されます")


def residents_levels_meet(constraints: Iterable[Constraint], levels: tuple[int, int]) -> bool:
    """A personal record's identityAssurance (``Decision.record_assurance``): the lower of the
    resident's 身元確認 and 当人認証 levels ``levels`` on one platform satisfies every constraint.
    A transfer between platforms asks it for both platforms' ids of the resident (5-10)."""
    return all(_COMPARE[c.operator](min(levels), c.right_operand) for c in constraints)


def _check_mesh(c: Constraint, ctx: PolicyContext) -> ConstraintFailure | None:
    actual = ctx.consumer_mesh or ctx.provider_mesh
    if _COMPARE[c.operator](actual, c.right_operand):
        return None
    right = c.right_operand
    listed = "、".join(right) if isinstance(right, tuple) else right
    return _fail(c, actual, f"the consumer's mesh {actual!r} does not meet mesh {c.operator} "
                 f"{_json(right)!r}", f"利用者のメッシュ「{actual}」は許可されたメッシュ"
                 f"（{listed}）の条件を満たしません")


def _check_consent(c: Constraint, ctx: PolicyContext) -> None:
    """Never fails: ``consent eq true`` only routes the transfer through the consent filter."""
    return None


_CHECKS = {"purpose": _check_value, "consumerType": _check_value, "consumerId": _check_value,
           "spatial": _check_spatial, "dateTime": _check_datetime, "transferCount": _check_count,
           "recordCount": _check_count, "identityAssurance": _check_assurance, "consent": _check_consent,
           "mesh": _check_mesh}

"""The offer form: purpose, organisation types, spatial scope, validity window, counts,
consent and identity levels become a usage policy (docs/policies.md). The form holds one or
more alternatives (「または」), each the same group of fields and each one permission of the
policy; the first alternative's fields have plain names (``purposes``), the others a prefix
(``alt1_purposes``). ``mesh.policy.parse_policy`` judges the result; its error path
(``permissions[1].constraints[3]``) is turned back into the field of the alternative that
produced that constraint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from connector.web.datasets.areas import area_names
from mesh.datasets import ID_PATTERN
from mesh.errors import InvalidRequest
from mesh.ids import ParticipantType
from mesh.policy import Policy, PolicyError, parse_policy

TYPES = tuple(t.value for t in ParticipantType)
SPATIAL_MODES = ("any", "sameMunicipality", "samePrefecture", "listed")
LEVELS = ("", "1", "2", "3")
MAX_ALTERNATIVES = 5           # each adds ~10 fields; a form holds at most 100 (mesh.web.forms)
# the fields of the offer as a whole; the others belong to an alternative (a permission)
OFFER_FIELDS = ("offer_id", "alternatives", "delete_days", "report_usage", "attribute")
CONTROLS = ("csrf_token", "confirm", "add_alternative", "remove_alternative")
_SPLIT = re.compile(r"[,、\s]+")
JST_OFFSET = "+09:00"


def _words(text: str) -> list[str]:
    return [w for w in _SPLIT.split(text.strip()) if w]


def _date(form: Mapping[str, str], name: str, errors: dict[str, list[str]]) -> date | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.setdefault(name, []).append("@datasets.offer.error.date")
        return None


def _count(form: Mapping[str, str], name: str, errors: dict[str, list[str]]) -> int | None:
    text = form.get(name, "").strip().replace(",", "")
    if not text:
        return None
    if not text.isdigit() or len(text) > 15:
        errors.setdefault(name, []).append("@datasets.offer.error.count")
        return None
    return int(text)


def chosen_areas(form: Mapping[str, str], prefix: str = "") -> list[str]:
    """Codes ticked in the picker, then the ones typed in, in order, without repeats."""
    head = f"{prefix}area_"
    codes = [k.removeprefix(head) for k in form
             if k.startswith(head) and k != f"{head}other"]
    seen: dict[str, None] = {}
    for code in codes + _words(form.get(f"{head}other", "")):
        seen.setdefault(code, None)
    return list(seen)


def prefix_of(index: int) -> str:
    """The name prefix of alternative ``index``'s fields: none for the first (so a one-permission
    form keeps its plain names), ``alt1_`` … for the others."""
    return f"alt{index}_" if index else ""


def alternatives(form: Mapping[str, str]) -> int:
    """How many alternatives the form holds (its hidden ``alternatives`` field, 1 when absent)."""
    text = form.get("alternatives", "1").strip()
    return min(max(int(text), 1), MAX_ALTERNATIVES) if text.isdigit() and len(text) < 4 else 1


def regroup(form: Mapping[str, str], *, add: bool = False, drop: int | None = None
            ) -> dict[str, str]:
    """The form with one more alternative (``add``, empty, spatial scope "any") or without
    alternative ``drop`` (the later ones move up a place, values kept; the last one stays).
    The buttons' own fields are left out."""
    groups = [_fields_of(form, i) for i in range(alternatives(form))]
    if drop is not None and 0 <= drop < len(groups) and len(groups) > 1:
        del groups[drop]
    if add and len(groups) < MAX_ALTERNATIVES:
        groups.append({"spatial_mode": "any"})
    out = {k: v for k, v in form.items() if k in OFFER_FIELDS}
    for i, values in enumerate(groups):
        out.update({f"{prefix_of(i)}{k}": v for k, v in values.items()})
    out["alternatives"] = str(len(groups))
    return out


def _fields_of(form: Mapping[str, str], index: int) -> dict[str, str]:
    """Alternative ``index``'s values under their plain names."""
    p = prefix_of(index)
    if p:
        return {k[len(p):]: v for k, v in form.items() if k.startswith(p)}
    return {k: v for k, v in form.items()
            if not k.startswith("alt") and k not in OFFER_FIELDS and k not in CONTROLS}


def _permission(form: Mapping[str, str], p: str, errors: dict[str, list[str]]
                ) -> list[tuple[str, dict[str, Any]]]:
    """One alternative's constraints as (form field, constraint); ``p``: its name prefix."""
    constraints: list[tuple[str, dict[str, Any]]] = []

    def add(name: str, left: str, op: str, right: Any) -> None:
        constraints.append((p + name, {"leftOperand": left, "operator": op, "rightOperand": right}))

    def error(name: str, key: str) -> None:
        errors.setdefault(p + name, []).append(key)

    purposes = _words(form.get(p + "purposes", ""))
    if purposes:
        add("purposes", "purpose", "isAnyOf", purposes)
    types = [t for t in TYPES if form.get(f"{p}type_{t}")]
    if types:
        add("types", "consumerType", "isAnyOf", types)
    mode = form.get(p + "spatial_mode", "any")
    if mode not in SPATIAL_MODES:
        error("spatial_mode", "@datasets.offer.error.spatial_mode")
    elif mode in ("sameMunicipality", "samePrefecture"):
        add("spatial_mode", "spatial", "eq", mode)
    elif mode == "listed":
        areas = chosen_areas(form, p)
        if not areas:
            error("areas", "@datasets.offer.error.areas")
        else:
            add("areas", "spatial", "isAnyOf", areas)
    start, end = _date(form, p + "valid_from", errors), _date(form, p + "valid_until", errors)
    if start and end and end < start:
        error("valid_until", "@datasets.offer.error.window")
    if start:
        add("valid_from", "dateTime", "gteq", f"{start.isoformat()}T00:00:00{JST_OFFSET}")
    if end:
        add("valid_until", "dateTime", "lt", f"{(end + timedelta(days=1)).isoformat()}T00:00:00{JST_OFFSET}")
    for name, left in (("max_transfers", "transferCount"), ("max_records", "recordCount")):
        value = _count(form, p + name, errors)
        if value is not None:
            add(name, left, "lteq", value)
    if form.get(p + "consent"):
        add("consent", "consent", "eq", True)
    level = form.get(p + "identity_level", "")
    if level not in LEVELS:
        error("identity_level", "@datasets.offer.error.level")
    elif level:
        add("identity_level", "identityAssurance", "gteq", int(level))
    return constraints


def build_policy(form: Mapping[str, str], lang: str = "ja"
                 ) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(policy document, errors by form field). Each alternative is one permission (docs/policies.md:
    allowed when every constraint of one of them holds). The document is parsed by
    ``parse_policy``; an error there is placed at the field of the alternative its constraint came
    from. With several alternatives, one without any condition is refused: it would let everyone
    in and make the others pointless."""
    errors: dict[str, list[str]] = {}
    permissions = [_permission(form, prefix_of(i), errors) for i in range(alternatives(form))]
    if len(permissions) > 1:
        for i, constraints in enumerate(permissions):
            if not constraints:
                errors.setdefault(f"{prefix_of(i)}alternative", []).append(
                    "@datasets.offer.error.empty_alternative")
    duties: list[tuple[str, dict[str, Any]]] = []
    days = _count(form, "delete_days", errors)
    if days is not None:
        duties.append(("delete_days", {"action": "delete", "constraints": [
            {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": f"P{days}D"}]}))
    for name, action in (("report_usage", "reportUsage"), ("attribute", "attribute")):
        if form.get(name):
            duties.append((name, {"action": action}))
    doc: dict[str, Any] = {"permissions": [{"action": "use", "constraints": [c for _, c in cs]}
                                           for cs in permissions]}
    if duties:
        doc["duties"] = [d for _, d in duties]
    if not errors:
        try:
            parse_policy(doc)
        except PolicyError as exc:
            errors.setdefault(_field_of(exc.path, permissions, duties), []).append(
                exc.message_ja if lang == "ja" and exc.message_ja else exc.message)
    return doc, errors


def _field_of(path: str, permissions: list[list[tuple[str, Any]]],
              duties: list[tuple[str, Any]]) -> str:
    """The form field behind ``parse_policy``'s error path: ``permissions[1].constraints[2]`` is
    the field of alternative 1 that made its third constraint."""
    m = re.match(r"permissions\[(\d+)\](?:\.constraints\[(\d+)\])?", path)
    if m and int(m.group(1)) < len(permissions):
        i = int(m.group(1))
        constraints = permissions[i]
        if m.group(2) is not None and int(m.group(2)) < len(constraints):
            return constraints[int(m.group(2))][0]
        return f"{prefix_of(i)}identity_level" if "identityAssurance" in path or "consent" in path \
            else f"{prefix_of(i)}alternative"
    m = re.match(r"duties\[(\d+)\]", path)
    if m and int(m.group(1)) < len(duties):
        return duties[int(m.group(1))][0]
    return "_general"


def offer_of(form: Mapping[str, str], lang: str = "ja"
             ) -> tuple[dict[str, Any] | None, Policy | None, dict[str, list[str]]]:
    """(offer, parsed policy, errors) from the form. An error is a message, or ``@key`` of
    the message catalog."""
    doc, errors = build_policy(form, lang)
    offer_id = form.get("offer_id", "").strip()
    if not ID_PATTERN.match(offer_id):
        errors.setdefault("offer_id", []).append("@datasets.offer.error.id")
    if errors:
        return None, None, errors
    try:
        policy = parse_policy(doc)
    except InvalidRequest as exc:       # reported above already; keep the form honest
        return None, None, {"_general": [exc.message_ja if lang == "ja" and exc.message_ja else exc.message]}
    return {"id": offer_id, "policy": doc}, policy, {}


def area_label(code: str) -> str:
    name = area_names().get(code)
    return f"{name}（{code}）" if name else code

"""The offer form: purpose, organisation types, spatial scope, validity window, counts,
consent and identity levels become a usage policy (docs/policies.md). ``mesh.policy.parse_policy``
judges the result; its error path (``permissions[0].constraints[3]``) is turned back into the
form field that produced that constraint.
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


def chosen_areas(form: Mapping[str, str]) -> list[str]:
    """Codes ticked in the picker, then the ones typed in, in order, without repeats."""
    codes = [k.removeprefix("area_") for k in form if k.startswith("area_") and k != "area_other"]
    seen: dict[str, None] = {}
    for code in codes + _words(form.get("area_other", "")):
        seen.setdefault(code, None)
    return list(seen)


def build_policy(form: Mapping[str, str], lang: str = "ja"
                 ) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(policy document, errors by form field). The document is parsed by ``parse_policy``;
    an error there is placed at the field its constraint came from."""
    errors: dict[str, list[str]] = {}
    constraints: list[tuple[str, dict[str, Any]]] = []     # (form field, constraint)

    def add(name: str, left: str, op: str, right: Any) -> None:
        constraints.append((name, {"leftOperand": left, "operator": op, "rightOperand": right}))

    purposes = _words(form.get("purposes", ""))
    if purposes:
        add("purposes", "purpose", "isAnyOf", purposes)
    types = [t for t in TYPES if form.get(f"type_{t}")]
    if types:
        add("types", "consumerType", "isAnyOf", types)
    mode = form.get("spatial_mode", "any")
    if mode not in SPATIAL_MODES:
        errors.setdefault("spatial_mode", []).append("@datasets.offer.error.spatial_mode")
    elif mode in ("sameMunicipality", "samePrefecture"):
        add("spatial_mode", "spatial", "eq", mode)
    elif mode == "listed":
        areas = chosen_areas(form)
        if not areas:
            errors.setdefault("areas", []).append("@datasets.offer.error.areas")
        else:
            add("areas", "spatial", "isAnyOf", areas)
    start, end = _date(form, "valid_from", errors), _date(form, "valid_until", errors)
    if start and end and end < start:
        errors.setdefault("valid_until", []).append("@datasets.offer.error.window")
    if start:
        add("valid_from", "dateTime", "gteq", f"{start.isoformat()}T00:00:00{JST_OFFSET}")
    if end:
        add("valid_until", "dateTime", "lt", f"{(end + timedelta(days=1)).isoformat()}T00:00:00{JST_OFFSET}")
    for name, left in (("max_transfers", "transferCount"), ("max_records", "recordCount")):
        value = _count(form, name, errors)
        if value is not None:
            add(name, left, "lteq", value)
    if form.get("consent"):
        add("consent", "consent", "eq", True)
    level = form.get("identity_level", "")
    if level not in LEVELS:
        errors.setdefault("identity_level", []).append("@datasets.offer.error.level")
    elif level:
        add("identity_level", "identityAssurance", "gteq", int(level))
    duties: list[tuple[str, dict[str, Any]]] = []
    days = _count(form, "delete_days", errors)
    if days is not None:
        duties.append(("delete_days", {"action": "delete", "constraints": [
            {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": f"P{days}D"}]}))
    for name, action in (("report_usage", "reportUsage"), ("attribute", "attribute")):
        if form.get(name):
            duties.append((name, {"action": action}))
    doc: dict[str, Any] = {"permissions": [{"action": "use", "constraints": [c for _, c in constraints]}]}
    if duties:
        doc["duties"] = [d for _, d in duties]
    if not errors:
        try:
            parse_policy(doc)
        except PolicyError as exc:
            errors.setdefault(_field_of(exc.path, constraints, duties), []).append(
                exc.message_ja if lang == "ja" and exc.message_ja else exc.message)
    return doc, errors


def _field_of(path: str, constraints: list[tuple[str, Any]], duties: list[tuple[str, Any]]) -> str:
    m = re.match(r"permissions\[0\]\.constraints\[(\d+)\]", path)
    if m and int(m.group(1)) < len(constraints):
        return constraints[int(m.group(1))][0]
    m = re.match(r"duties\[(\d+)\]", path)
    if m and int(m.group(1)) < len(duties):
        return duties[int(m.group(1))][0]
    return "identity_level" if "identityAssurance" in path or "consent" in path else "_general"


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

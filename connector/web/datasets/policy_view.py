"""An offer's policy for people: its plain-language description (``mesh.policy_text``) and one
row per constraint and duty (label key, value parts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.web.datasets.areas import area_names
from mesh.policy import TYPE_JA, Constraint, PolicyError, parse_policy
from mesh.policy_text import describe_offer
from mesh.web.render import jst

_NEGATIVE = ("neq", "isNoneOf")
_SPATIAL_WORDS = {"sameMunicipality": "@datasets.policy.spatial.same_municipality",
                  "samePrefecture": "@datasets.policy.spatial.same_prefecture"}


def _values(c: Constraint) -> list[Any]:
    v = c.right_operand
    return list(v) if isinstance(v, tuple | list) else [v]


def _parts(c: Constraint) -> list[str]:
    """The constraint's value as parts to show (``@key``: a catalog message)."""
    left = c.left_operand
    if left == "consumerType":
        return [f"@datasets.offer.type.{v}" if v in TYPE_JA else str(v) for v in _values(c)]
    if left == "spatial":
        names = area_names()
        return [_SPATIAL_WORDS.get(v) or (f"{names[v]}（{v}）" if v in names else str(v))
                for v in _values(c)]
    if left == "dateTime":
        return [jst(datetime.fromisoformat(str(c.right_operand)))]
    if left in ("transferCount", "recordCount"):
        return [f"{int(c.right_operand):,}"]
    if left == "consent":
        return ["@datasets.policy.consent.yes" if c.right_operand is True else "@datasets.policy.consent.no"]
    return [str(v) for v in _values(c)]


def policy_rows(doc: Any) -> list[tuple[str, list[str]]]:
    """(label key, value parts) for each permission's constraints and each duty."""
    try:
        policy = parse_policy(doc)
    except PolicyError as exc:
        return [("datasets.policy.invalid", [exc.message])]
    rows: list[tuple[str, list[str]]] = []
    if not policy.permissions:
        rows.append(("datasets.policy.nobody", []))
    for i, permission in enumerate(policy.permissions):
        if len(policy.permissions) > 1:
            rows.append(("datasets.policy.permission", [str(i + 1)]))
        if not permission.constraints:
            rows.append(("datasets.policy.anyone", []))
        for c in permission.constraints:
            suffix = ".not" if c.operator in _NEGATIVE else \
                f".{c.operator}" if c.left_operand in ("dateTime", "identityAssurance") else ""
            rows.append((f"datasets.policy.{c.left_operand}{suffix}", _parts(c)))
    for duty in policy.duties:
        within = duty.within
        rows.append((f"datasets.policy.duty.{duty.action}",
                     [f"{within.days}"] if within is not None and duty.action == "delete" else []))
    return rows


@dataclass(frozen=True)
class PolicyWords:
    """An offer's policy in plain words: one sentence per alternative (permission), the duties."""

    alternatives: tuple[str, ...]
    duties: str


def policy_sentences(doc: Any, lang: str, provider: str) -> PolicyWords:
    """The policy in plain words (``mesh.policy_text``, shared with the registry's catalog):
    one sentence per permission — several are alternatives, the page says "any one of" —
    then the duties. ``provider``: the dataset's publisher."""
    text = describe_offer(doc, provider, area_names())
    lines = text.permissions_ja if lang == "ja" else text.permissions_en
    return PolicyWords(tuple(lines), text.duties_ja if lang == "ja" else text.duties_en)

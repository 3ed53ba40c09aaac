"""The declared standard layout on the console's pages: the form's layout, edition and
missing-values fields ↔ ``standard_type`` / ``standard`` (docs/datasets.md), and the
"layout（edition）" shown on the dataset and catalog pages.

A dataset that declares a 2026 layout without missing values is written as ``standard_type``
(what it always was), so re-saving an old dataset leaves its description as it was; anything
else is written as ``standard: {layout, edition[, missingValues]}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mesh import standards
from mesh.datasets import declared_standard

#: edition id → the suffix of its message key ``datasets.edition.<key>``
DEFAULT_EDITION = standards.DEFAULT_EDITION
EDITION_KEYS = {e.id: e.aliases[-1] for e in standards.EDITIONS}
_VALUES = re.compile(r"[,、]")


def edition_choices() -> list[dict[str, Any]]:
    """Each shipped edition (oldest first) with its message key and its layouts' titles."""
    return [{"id": e.id, "key": f"datasets.edition.{EDITION_KEYS[e.id]}",
             "layouts": [s.title for s in standards.layouts(e.id)]} for e in standards.EDITIONS]


def layout_group(form: Mapping[str, str]) -> str:
    """The edition whose group of the layout select shows the form's layout as selected: the
    form's edition when it has that layout, else the first edition that does."""
    layout, edition = form.get("standard_layout", ""), form.get("standard_edition", "")
    having = [c["id"] for c in edition_choices() if layout in c["layouts"]]
    return edition if edition in having else (having[0] if having else "")


def view(doc: Mapping[str, Any]) -> dict[str, str] | None:
    """``{layout, edition, edition_key}`` of the layout a description declares, or None."""
    declared = declared_standard(dict(doc))
    if declared is None:
        raw = doc.get("standard") if isinstance(doc.get("standard"), dict) else {}
        layout = raw.get("layout") or doc.get("standard_type")
        if not isinstance(layout, str) or not layout:
            return None
        declared = {"layout": layout, "edition": str(raw.get("edition") or standards.DEFAULT_EDITION)}
    key = EDITION_KEYS.get(declared["edition"], "other")
    return {"layout": declared["layout"], "edition": declared["edition"],
            "edition_key": f"datasets.edition.{key}"}


def missing_text(missing: Any) -> str:
    """``missingValues`` as the form shows it: a line ``列: 値, 値`` per column (``*``: every column)."""
    if isinstance(missing, list):
        missing = {"*": missing}
    if not isinstance(missing, Mapping):
        return ""
    return "\n".join(f"{column}: {', '.join(map(str, values))}" for column, values in missing.items()
                     if isinstance(values, list))


def missing_values(text: str) -> list[str] | dict[str, list[str]] | None:
    """The form's missing-values lines as ``missingValues``: a list when every line is for
    every column (``*`` or no column named), else a mapping; None when empty."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        column, sep, values = line.replace("：", ":").partition(":")
        if not sep:
            column, values = "*", line
        out.setdefault(column.strip() or "*", []).extend(
            v.strip() for v in _VALUES.split(values) if v.strip())
    if not out:
        return None
    return out["*"] if list(out) == ["*"] else out


def form_values(doc: Mapping[str, Any]) -> dict[str, str]:
    """The form's standard fields for a description."""
    shown = view(doc)
    if shown is None:
        return {"standard_layout": "", "standard_edition": standards.DEFAULT_EDITION,
                "standard_key": ""}
    raw = doc.get("standard")
    return {"standard_layout": shown["layout"], "standard_edition": shown["edition"],
            "standard_missing": missing_text(raw.get("missingValues")) if isinstance(raw, dict) else "",
            "standard_key": "standard" if raw is not None else "standard_type"}


def declaration(form: Mapping[str, str]) -> dict[str, Any]:
    """``{"standard_type": …}``, ``{"standard": {…}}`` or ``{}`` for the form's standard fields.

    ``standard_type`` when the edition is the default one, no missing values are given and the
    description did not already use ``standard`` (hidden field ``standard_key``)."""
    layout = form.get("standard_layout", "").strip()
    edition = form.get("standard_edition", "").strip() or standards.DEFAULT_EDITION
    missing = missing_values(form.get("standard_missing", ""))
    if not layout:
        if missing is None and edition == standards.DEFAULT_EDITION:
            return {}
        return {"standard": {"layout": "", "edition": edition}
                | ({"missingValues": missing} if missing is not None else {})}
    if edition == standards.DEFAULT_EDITION and missing is None \
            and form.get("standard_key", "") != "standard":
        return {"standard_type": layout}
    out: dict[str, Any] = {"layout": layout, "edition": edition}
    if missing is not None:
        out["missingValues"] = missing
    return {"standard": out}

"""The dataset form: its fields ↔ a dataset description (docs/datasets.md), and each
validation error placed next to the field it is about.

The form holds no rule of its own: it only shapes what was typed into the description the CLI
reads from a file; ``mesh.datasets.parse_description`` and the adapters judge it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connector.web.datasets import standards
from mesh.datasets import ACCESS, CLASSIFICATIONS, FREQUENCIES, MANAGEMENT_MODES, THEMES
from mesh.errors import AreameshError

ENCODINGS = ("auto", "utf-8", "utf-8-sig", "cp932")
TEXT_FIELDS = ("id", "publisher", "title_ja", "title_en", "description_ja", "description_en",
               "keywords", "standard_layout", "standard_edition", "standard_missing", "schema",
               "classification", "management", "update_frequency", "spatial", "license", "access",
               "subject_field", "source_adapter", "source_path", "source_encoding", "mapping")
GENERAL = "_general"
_SPLIT = re.compile(r"[,、\s]+")


def choices() -> dict[str, Any]:
    return {"themes": THEMES, "classifications": list(CLASSIFICATIONS), "management": MANAGEMENT_MODES,
            "frequencies": FREQUENCIES, "access": ACCESS, "encodings": ENCODINGS,
            "editions": standards.edition_choices()}


def _words(text: str) -> list[str]:
    return [w for w in _SPLIT.split(text.strip()) if w]


def _schema(text: str) -> dict[str, Any] | None:
    fields = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, ftype = line.strip().rpartition(":")
        fields.append({"name": name.strip(), "type": ftype.strip()} if sep and name.strip()
                      else {"name": line.strip(), "type": "string"})
    return {"fields": fields} if fields else None


def description_of(form: Mapping[str, str], *, publisher: str,
                   offers: list[Any] | None = None) -> dict[str, Any]:
    """The description the form states (``publisher``: the account's tenant or what was typed)."""
    v = {name: form.get(name, "").strip() for name in TEXT_FIELDS}
    doc: dict[str, Any] = {"id": v["id"], "publisher": publisher,
                           "title": {"ja": v["title_ja"]} | ({"en": v["title_en"]} if v["title_en"] else {}),
                           "themes": [t for i, t in enumerate(THEMES) if form.get(f"theme_{i}")],
                           "keywords": _words(v["keywords"]), "license": v["license"],
                           "classification": v["classification"] or "non_personal",
                           "management": v["management"] or "external",
                           "update_frequency": v["update_frequency"] or "irregular",
                           "access": v["access"] or "open", "spatial": _words(v["spatial"]),
                           "offers": offers or []}
    if v["description_ja"] or v["description_en"]:
        doc["description"] = {k: v[f"description_{k}"] for k in ("ja", "en") if v[f"description_{k}"]}
    elif v["title_ja"]:                      # the title says it when nothing more is typed
        doc["description"] = {"ja": v["title_ja"]}
    doc.update(standards.declaration(form))
    schema = _schema(form.get("schema", ""))
    if schema is not None:
        doc["schema"] = schema
    if v["subject_field"]:
        doc["subject_field"] = v["subject_field"]
    if v["source_path"]:
        doc["source"] = {"adapter": v["source_adapter"] or "csv", "path": v["source_path"]}
        if (v["source_adapter"] or "csv") == "csv":
            doc["source"]["encoding"] = v["source_encoding"] or "auto"
    return doc


def form_of(doc: Mapping[str, Any], mapping: str = "") -> dict[str, str]:
    """The form's values for a description (editing a draft or a published dataset)."""
    def text(key: str, lang: str) -> str:
        value = doc.get(key)
        return value.get(lang, "") if isinstance(value, dict) else (value or "" if lang == "ja" else "")

    source = doc.get("source") if isinstance(doc.get("source"), dict) else {}
    fields = (doc.get("schema") or {}).get("fields") or [] if isinstance(doc.get("schema"), dict) else []
    form = {"id": doc.get("id", ""), "publisher": doc.get("publisher", ""),
            "title_ja": text("title", "ja"), "title_en": text("title", "en"),
            "description_ja": text("description", "ja"), "description_en": text("description", "en"),
            "keywords": ", ".join(map(str, doc.get("keywords") or [])),
            **standards.form_values(doc),
            "schema": "\n".join(f"{f.get('name', '')}:{f.get('type', 'string')}" for f in fields
                                if isinstance(f, dict)),
            "classification": doc.get("classification", "non_personal"),
            "management": doc.get("management", "external"),
            "update_frequency": doc.get("update_frequency", "irregular"),
            "spatial": ", ".join(map(str, doc.get("spatial") or [])),
            "license": doc.get("license", ""), "access": doc.get("access", "open"),
            "subject_field": doc.get("subject_field") or "",
            "source_adapter": source.get("adapter", "csv"), "source_path": source.get("path", ""),
            "source_encoding": source.get("encoding", "auto"), "mapping": mapping}
    for i, theme in enumerate(THEMES):
        if theme in (doc.get("themes") or []):
            form[f"theme_{i}"] = "on"
    return {k: str(v) for k, v in form.items()}


def empty_form(publisher: str) -> dict[str, str]:
    return {"publisher": publisher, "license": "CC-BY-4.0", "classification": "non_personal",
            "management": "external", "update_frequency": "irregular", "access": "open",
            "source_adapter": "csv", "source_encoding": "auto",
            "standard_edition": standards.DEFAULT_EDITION}


_FIELD_OF = {"title": "title_ja", "description": "description_ja", "themes": "themes",
             "schema": "schema", "fields": "schema", "spatial": "spatial", "keywords": "keywords",
             "source": "source_path", "offers": "access", "(document)": GENERAL}
_STANDARD_FIELDS = {"standard.layout": "standard_layout", "standard.edition": "standard_edition",
                    "standard.missingValues": "standard_missing", "standard": "standard_layout",
                    "standard_type": "standard_layout"}
_SOURCE_KEYS = {"adapter": "source_adapter", "path": "source_path", "encoding": "source_encoding"}


def field_of(error_field: str) -> str:
    """The form field an error of ``validate_description`` is about: ``title.en`` → title_en,
    ``themes[0]`` → themes, ``schema.fields[2].type`` → schema, ``standard.edition`` →
    standard_edition, ``standard.missingValues.色`` → standard_missing; GENERAL when none fits."""
    head = re.split(r"[.\[]", error_field, maxsplit=1)[0]
    if head in ("standard", "standard_type"):
        parts = error_field.split(".")
        return _STANDARD_FIELDS.get(".".join(parts[:2]), _STANDARD_FIELDS[head])
    if head in ("title", "description") and error_field.startswith(f"{head}.en"):
        return f"{head}_en"
    if head in _FIELD_OF:
        return _FIELD_OF[head]
    return head if head in TEXT_FIELDS else GENERAL


def errors_by_field(exc: AreameshError, lang: str) -> dict[str, list[str]]:
    """Every message of a refusal, keyed by form field."""
    out: dict[str, list[str]] = {}

    def add(name: str, text: str) -> None:
        out.setdefault(name, []).append(text)

    details = exc.details or {}
    listed = details.get("errors")
    if isinstance(listed, list):
        for e in listed:
            message = e.get("message_ja") if lang == "ja" and e.get("message_ja") else e.get("message")
            add(field_of(str(e.get("field", ""))), f"{e.get('field')}: {message}")
        return out
    message = exc.message_ja if lang == "ja" and exc.message_ja else exc.message
    if exc.code == "invalid_mapping":
        add("mapping", message)
    elif "key" in details:
        add(_SOURCE_KEYS.get(str(details["key"]), "source_path"), message)
    elif "field" in details:
        add(str(details["field"]) if details["field"] in TEXT_FIELDS else GENERAL, message)
    else:
        add(GENERAL, message)
    return out

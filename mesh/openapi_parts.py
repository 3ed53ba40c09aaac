"""Pieces both servers' OpenAPI documents are built from (registry/openapi.py,
connector/openapi.py): the shared error schema reference and the response helper."""

from __future__ import annotations

ERROR = {"$ref": "#/components/schemas/Error"}
JSON = "application/json"


def response(description: str, schema: dict | None = None, ctype: str = JSON) -> dict:
    """An OpenAPI response object: a description and, with ``schema``, its content."""
    out: dict = {"description": description}
    if schema is not None:
        out["content"] = {ctype: {"schema": schema}}
    return out

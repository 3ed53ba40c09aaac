"""Checking a dataset's source before it is published or refreshed (公開前の確認).

``dataset add`` and ``dataset refresh`` open the dataset's ``source`` through its adapter, as a
transfer would, and read only what tells whether it is the dataset described: the header (the
adapter's schema: a CSV's first row, the columns of an SQL query, the keys of the first JSON
items or NGSI-LD entities) and the first rows (``SAMPLE_ROWS``). So the check is the same for
every kind of source and costs the same for 1 kB and 10 GB.

It refuses (``InvalidRequest``):

- ``source_unreadable``: the source cannot be opened or its first rows read (missing or
  unreadable file, wrong encoding, a database or API that does not answer, …), with the adapter's
  own message;
- ``header_mismatch``: the columns differ from the ones the catalog will announce: the declared
  Table Schema, or the standard dataset type's full column list when no schema is declared. Each
  column is named: ``missing`` (announced, not in the source), ``unexpected`` (in the source, not
  announced) and ``misnamed`` (a source column that is an announced one spelt differently:
  full/half width, spaces, case, or a close spelling at the same position).

The publisher may skip it explicitly (``--defer-check``): the dataset is then published with
``source_check: {status: deferred}``, which the catalog entry and ``dataset list`` show. A
description without ``source`` (a catalog-only entry) has nothing to check.

``validate_dataset`` goes further on request (``areamesh connector dataset check --id``): every
value of a registered dataset's CSV source is validated with ``mesh.standards.validate`` against
the layout and edition the dataset declares, with the placeholders it declares
(``standard.missingValues``).
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.datasets.sources import adapter_source
from connector.datasets.store import PublisherStore, find_dataset
from mesh.clock import iso, utcnow
from mesh.datasets import declared_standard
from mesh.errors import AreameshError, FailedPrecondition, InvalidRequest
from mesh.standards import normalize_header

if TYPE_CHECKING:
    from mesh.standards.validate import Report

SAMPLE_ROWS = 100


@dataclass(frozen=True)
class ColumnProblem:
    kind: str                 # missing | unexpected | misnamed
    column: str               # the announced name (missing, misnamed) or the source's (unexpected)
    found: str | None         # misnamed: the source's spelling
    message: str
    message_ja: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def expected_columns(doc: dict[str, Any], published: dict[str, Any]) -> tuple[list[str], str]:
    """The column names the catalog announces (``published``'s schema: the declared one, or the
    standard type's filled in) and where they come from."""
    fields = (published.get("schema") or {}).get("fields") or []
    names = [f["name"] for f in fields if isinstance(f, dict) and isinstance(f.get("name"), str)]
    declared = declared_standard(published)
    standard = published.get("standard_type") or (declared and f"{declared['layout']}@{declared['edition']}")
    return names, (f"the standard {standard}" if standard and doc.get("schema") is None
                   else "the declared schema")


def _loose(name: str) -> str:
    return "".join(normalize_header(name).split()).casefold()


def compare_header(expected: list[str], actual: list[str]) -> list[ColumnProblem]:
    """Every difference between the announced columns and the source's, column by column.
    Order does not matter; names must be equal."""
    missing = [e for e in expected if e not in actual]
    extra = [a for a in actual if a not in expected]
    pairs: list[tuple[str, str]] = []

    def pair(match) -> None:
        for e in list(missing):
            found = next((a for a in extra if match(e, a)), None)
            if found is not None:
                pairs.append((e, found))
                missing.remove(e)
                extra.remove(found)

    pair(lambda e, a: _loose(e) == _loose(a))
    pair(lambda e, a: expected.index(e) == actual.index(a)
         and difflib.SequenceMatcher(None, _loose(e), _loose(a)).ratio() >= 0.5)
    pair(lambda e, a: difflib.SequenceMatcher(None, _loose(e), _loose(a)).ratio() >= 0.8)
    problems = [ColumnProblem("misnamed", e, a,
                              f"column {a!r} of the source should be named {e!r}",
                              f"列「{a}」は「{e}」という名前のはずです") for e, a in pairs]
    problems += [ColumnProblem("missing", e, None, f"column {e!r} is missing from the source",
                               f"列「{e}」がデータソースにありません") for e in missing]
    problems += [ColumnProblem("unexpected", a, None,
                               f"column {a!r} of the source is not in the announced schema",
                               f"データソースの列「{a}」はスキーマにありません") for a in extra]
    return problems


def header_mismatch(dataset_id: str, against: str, problems: list[ColumnProblem]
                    ) -> InvalidRequest:
    listed = "; ".join(p.message for p in problems)
    listed_ja = "、".join(p.message_ja for p in problems)
    hint = ("declare a schema that lists the source's columns, fix the source, or publish with "
            "--defer-check")
    return InvalidRequest(
        f"the source of {dataset_id} does not match {against}: {listed}. {hint}",
        message_ja=f"{dataset_id} のデータソースの列がスキーマと一致しません: {listed_ja}。"
                   "スキーマまたはデータソースを直すか、--defer-check を指定してください",
        code="header_mismatch",
        details={"against": against, "columns": [p.to_json() for p in problems]})


async def read_header(store: PublisherStore, doc: dict[str, Any]) -> tuple[list[str], int]:
    """(the source's column names, rows read from its start); ``InvalidRequest``
    ``source_unreadable`` with the adapter's message when it cannot be read."""
    try:
        source = adapter_source(store, doc)
    except AreameshError as exc:
        raise _unreadable(doc["id"], exc) from None
    try:
        schema = await source.schema()
        if schema is None:
            raise InvalidRequest("the adapter cannot state the source's columns")
        batches = source.read(batch_rows=SAMPLE_ROWS)
        try:
            first = await anext(batches, None)
        finally:
            await batches.aclose()
        return list(schema.names), first.num_rows if first is not None else 0
    except AreameshError as exc:
        raise _unreadable(doc["id"], exc) from None
    except (OSError, ValueError, RuntimeError) as exc:   # pyarrow's errors are ValueErrors
        raise _unreadable(doc["id"], InvalidRequest(f"{type(exc).__name__}: {exc}")) from None
    finally:
        await source.close()


def _unreadable(dataset_id: str, exc: AreameshError) -> InvalidRequest:
    return InvalidRequest(
        f"the source of {dataset_id} cannot be read: {exc.message}",
        message_ja=f"{dataset_id} のデータソースを読めません: {exc.message_ja or exc.message}",
        code="source_unreadable", details={"cause": exc.code, **exc.details})


async def check_source(store: PublisherStore, doc: dict[str, Any], published: dict[str, Any],
                       *, defer: bool = False) -> dict[str, Any] | None:
    """The ``source_check`` record of ``doc`` (None without a source), or the refusal.
    ``defer``: record that the publisher skipped the check, without reading anything."""
    if not isinstance(doc.get("source"), dict):
        return None
    if defer:
        return {"status": "deferred", "at": iso(utcnow())}
    columns, rows = await read_header(store, doc)
    expected, against = expected_columns(doc, published)
    problems = compare_header(expected, columns)
    if problems:
        raise header_mismatch(doc["id"], against, problems)
    return {"status": "passed", "at": iso(utcnow()), "columns": len(columns), "rows_read": rows}


def source_file(store: PublisherStore, doc: dict[str, Any]) -> tuple[Path, str | None]:
    """The CSV file behind a dataset's ``csv`` source, resolved as the adapter resolves it, and its
    declared encoding (None: detect). ``FailedPrecondition`` for another kind of source."""
    kind = (doc.get("source") or {}).get("adapter") if isinstance(doc.get("source"), dict) else None
    if kind != "csv":
        raise FailedPrecondition(
            f"dataset {doc['id']} has no csv source (adapter {kind or 'none'}); only CSV files "
            "are validated against a standard layout",
            message_ja=f"データセット {doc['id']} のデータソースは CSV ではありません"
                       f"（{kind or 'なし'}）。標準レイアウトとの照合は CSV ファイルのみです",
            code="not_a_csv_source")
    source = adapter_source(store, doc)
    encoding = getattr(source, "declared_encoding", "auto")
    return Path(source.path), None if encoding == "auto" else encoding


def merged_missing_values(declared: Any, extra: Mapping[str, Sequence[str]] | None = None
                          ) -> dict[str, list[str]]:
    """The dataset's ``missingValues`` (a list for every column, or column → list) with
    ``extra`` (column or ``*`` → list, e.g. from ``--missing-value``) added."""
    out: dict[str, list[str]] = {}
    items = {"*": declared}.items() if isinstance(declared, list) else (declared or {}).items()
    for source in (items, (extra or {}).items()):
        for column, values in source:
            out.setdefault(column, []).extend(v for v in values if v not in out.get(column, []))
    return out


async def validate_dataset(data_dir: Path, dataset_id: str, *, standard: str | None = None,
                           edition: str | None = None,
                           missing_values: Mapping[str, Sequence[str]] | None = None,
                           encoding: str | None = None) -> Report:
    """Validate every value of a registered dataset's CSV source against the layout and edition it
    declares (``standard``/``edition`` override it; a dataset that declares none has its layout
    detected from the header), with its declared ``missingValues`` plus ``missing_values``."""
    from mesh.standards.validate import choose_layout, read_header, validate_csv

    store, doc = find_dataset(data_dir, dataset_id)
    path, declared_encoding = source_file(store, doc)
    encoding = encoding or declared_encoding
    if not path.is_file():
        raise FailedPrecondition(f"the source file of {dataset_id} is missing: {path}",
                                 message_ja=f"{dataset_id} のデータソースのファイルがありません: {path}",
                                 code="source_unreadable")
    declared = declared_standard(doc) or {}
    if standard is None and declared:
        standard, edition = declared["layout"], edition or declared["edition"]
    layout = choose_layout(standard, read_header(path, encoding), edition)
    values = merged_missing_values(declared.get("missingValues"), missing_values)
    return await asyncio.to_thread(validate_csv, path, layout, missing_values=values,
                                   encoding=encoding)

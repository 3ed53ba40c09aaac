"""Bulk import (一括登録): many CSV files become published datasets in one run.

``areamesh connector dataset import SOURCE`` takes a folder of CSV files, or a CKAN portal's URL
(``ckan_harvest.py``), and turns each file into a dataset description:

- encoding: the CSV adapter's detection (UTF-8, UTF-8 with BOM, CP932/Shift_JIS);
- layout: the standard layout and edition the header matches best (``match_layout``, the one
  place that asks ``mesh.standards``: ``detect_layout`` over every edition); declared only when the
  header conforms: ``standard_type`` for a 2026 model, ``standard: {layout, edition}`` for the
  2019 推奨データセット or 自治体標準オープンデータセット layouts;
- municipality: the most common value of the 全国地方公共団体コード column (check digit
  validated; a 5-digit value is read as a code that lost its leading zero), else ``--publisher``
  or this node's participant. That code is the publisher: this participant or a tenant it hosts.
  The registry decides who may publish for whom, so a file of a municipality this node neither
  is nor hosts is *skipped* with the registry's reason;
- id ``<code>-<layout>`` (``282014-public-toilets``), or ``<code>-<file stem>`` without a
  layout (a stem with no ASCII letters becomes ``csv-<hash of the stem>``); a second file of the
  same code and layout in one folder gets ``<code>-<layout>-<stem>``. Files are taken in name
  order, so the ids are the same on every run;
- the schema is the header (string columns; the standard's types where it conforms), the source
  an absolute-path ``csv`` adapter config.

Re-running is idempotent. Each dataset's import record (``publishers/<id>/imports/<dataset>.json``)
keeps the SHA-256 of the file's content and the adapter's fingerprint (mtime and size, the same
``file_fingerprint`` transfers use): an unchanged fingerprint skips hashing. A dataset is
published again (a new registry version) only when its published description, its source config
or its content changed. A bad file never stops the run: it is reported as *failed* with its
reason and the rest are imported. ``dry_run`` reads and compares, writes nothing and publishes
nothing.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import hashlib
import json
import logging
import os
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from connector.adapters import _encoding
from connector.adapters._files import file_fingerprint
from connector.datasets.check import check_source
from connector.datasets.store import PublisherStore, all_publishers
from connector.node_state import NodeState
from mesh.datasets import ID_PATTERN, canonical_json, parse_description, standard_errors
from mesh.errors import AreameshError, InvalidRequest, PermissionDenied, Unavailable
from mesh.files import atomic_write
from mesh.ids import validate_local_government_code
from mesh.places import place_name

log = logging.getLogger("areamesh.connector.datasets.import")

DEFAULT_LICENSE = "CC-BY-4.0"
CODE_COLUMNS = ("全国地方公共団体コード", "都道府県コード又は市区町村コード", "市区町村コード")
NAME_COLUMNS = ("地方公共団体名", "市区町村名")
CONCURRENCY = 8              # items checked and published at once
VOTE_ROWS = 100_000          # rows read to find the municipality code (and check field counts)
OPEN_USE = [{"id": "open-use", "policy": {"permissions": [{"action": "use"}]}}]
STATUSES = ("added", "updated", "unchanged", "skipped", "failed")
STATUS_JA = {"added": "追加", "updated": "更新", "unchanged": "変更なし", "skipped": "対象外",
             "failed": "失敗"}
THEME_WORDS = (("観光", "観光"), ("イベント", "観光"), ("避難", "防災"), ("防災", "防災"),
               ("消防", "防災"), ("AED", "防災"), ("子育て", "子育て"), ("保育", "子育て"),
               ("医療", "医療・福祉"), ("介護", "医療・福祉"), ("AED", "医療・福祉"),
               ("人口", "人口・統計"), ("文化", "文化・スポーツ"), ("トイレ", "都市計画・インフラ"),
               ("無線LAN", "都市計画・インフラ"), ("食品", "健康"), ("公共施設", "行政"))


# ------------------------------------------------------------------------------- layout detection

@dataclass(frozen=True)
class Layout:
    """The standard layout a header matches: its id (``public_toilets``), Japanese and English
    titles, whether the header conforms (no missing required column, no duplicate), how many
    of the header's columns are the standard's, and the edition it belongs to."""

    name: str
    title: str
    title_en: str
    conforms: bool
    matched: int
    types: dict[str, str] = field(default_factory=dict)   # normalised header → Table Schema type
    edition: str = "エリアデータ標準データモデル-2026"

    def declaration(self) -> dict[str, Any]:
        """What a conforming file's description declares: ``standard_type`` for the 2026 models
        (as before), ``standard: {layout, edition}`` for an older edition's layout."""
        from mesh.standards import DEFAULT_EDITION

        if self.edition == DEFAULT_EDITION:
            return {"standard_type": self.title}
        return {"standard": {"layout": self.title, "edition": self.edition}}


def match_layout(header: Sequence[str]) -> Layout | None:
    """The best-matching standard layout of a CSV header, in any shipped edition (2019 推奨
    データセット, 自治体標準オープンデータセット, 2026 models), or None when none matches well enough.

    The one function that asks ``mesh.standards``: ``detect_layout`` finds the layout and its
    edition (a weighted Dice score of the column sets, at least 0.6); ``check_csv_header`` against
    that edition's layout tells whether the header conforms."""
    from mesh import standards

    match = standards.detect_layout(header)
    if match is None:
        return None
    std = standards.get_standard(match.layout, match.edition)
    mismatches = standards.check_csv_header(std.label, header)
    extra = sum(1 for m in mismatches if m.kind in ("extra", "duplicate"))
    return Layout(std.name, std.title, std.title_en, not any(m.is_error for m in mismatches),
                  len(header) - extra,
                  {standards.normalize_header(f.name): f.type for f in std.fields}, std.edition)


# ------------------------------------------------------------------------------- reading a file

@dataclass(frozen=True)
class CsvFacts:
    encoding: str
    header: list[str]
    rows: int
    code: str | None              # the municipality code the rows name most often
    municipality: str | None      # the name the rows give it most often


def _cell(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    keys = [_cell(h) for h in header]
    for name in names:
        if name in keys:
            return keys.index(name)
    return None


def checked_code(value: str) -> str:
    """A 全国地方公共団体コード from a cell: 6 digits with a valid check digit, or 5 digits that
    lost their leading zero in a spreadsheet (``11002`` → ``011002``)."""
    if len(value) == 5 and value.isascii() and value.isdigit():
        value = "0" + value
    return validate_local_government_code(value)


def inspect_csv(path: Path) -> CsvFacts:
    """Encoding, header, row count and municipality of a CSV file; ``InvalidRequest`` (or the
    adapter's ``SourceError``) saying what is wrong with a file that cannot be imported."""
    encoding = _encoding.detect(path)
    codes: collections.Counter[str] = collections.Counter()
    names: collections.Counter[str] = collections.Counter()
    try:
        with path.open(encoding=encoding, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise InvalidRequest(f"{path.name}: the file is empty (no header row)",
                                     message_ja=f"{path.name}: ファイルが空です（見出し行がありません）",
                                     code="empty_file")
            header = [h.replace("\ufeff", "").strip() for h in header]
            code_at, name_at = _column(header, CODE_COLUMNS), _column(header, NAME_COLUMNS)
            rows = 0
            for rows, row in enumerate(reader, start=1):
                if len(row) != len(header) and any(c.strip() for c in row):
                    raise InvalidRequest(
                        f"{path.name}: record {rows + 1} has {len(row)} fields; the header has "
                        f"{len(header)}", message_ja=f"{path.name}: {rows + 1} 行目の項目数が "
                        f"{len(row)} 個です（見出しは {len(header)} 個）", code="bad_row")
                if rows <= VOTE_ROWS:
                    if code_at is not None and code_at < len(row) and _cell(row[code_at]):
                        codes[_cell(row[code_at])] += 1
                    if name_at is not None and name_at < len(row) and _cell(row[name_at]):
                        names[_cell(row[name_at])] += 1
    except UnicodeDecodeError:
        raise _encoding.locate_decode_error(path, encoding) or InvalidRequest(
            f"{path.name}: not valid {encoding}", message_ja=f"{path.name}: 文字コードが不正です") \
            from None
    except csv.Error as exc:
        raise InvalidRequest(f"{path.name}: cannot parse CSV: {exc}",
                             message_ja=f"{path.name}: CSV を解析できません", code="bad_csv") from None
    code = None
    if codes:
        value = codes.most_common(1)[0][0]
        try:
            code = checked_code(value)
        except InvalidRequest as exc:
            raise InvalidRequest(f"{path.name}: municipality code column: {exc.message}",
                                 message_ja=f"{path.name}: 全国地方公共団体コードの列: {exc.message_ja}",
                                 code="invalid_municipality_code") from None
    municipality = names.most_common(1)[0][0] if names else None
    return CsvFacts(encoding, header, rows, code, municipality)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------- descriptions

def slug(text: str) -> str:
    """ASCII id part: lower case, runs of anything but a-z 0-9 . _ - become '-'."""
    out = re.sub(r"[^a-z0-9._-]+", "-", unicodedata.normalize("NFKC", text).lower()).strip("-._")
    return re.sub(r"-{2,}", "-", out)


def stem_slug(stem: str) -> str:
    part = slug(stem)
    if not re.search(r"[a-z]", part):
        part = "csv-" + hashlib.sha256(stem.encode()).hexdigest()[:8]
    return part[:60]


def themes_for(*texts: str) -> list[str]:
    found = [theme for word, theme in THEME_WORDS if any(word in t for t in texts)]
    return list(dict.fromkeys(found))[:3] or ["行政"]


def schema_of(header: list[str], layout: Layout | None) -> dict[str, Any]:
    from mesh.standards import normalize_header

    types = layout.types if layout is not None and layout.conforms else {}
    return {"fields": [{"name": h, "type": types.get(normalize_header(h), "string")}
                       for h in header]}


@dataclass
class Item:
    """One dataset to import: a description with its ``source`` and where its file is.
    ``staged``: a downloaded file, moved to the source's path only when the content changed."""

    name: str
    publisher: str
    doc: dict[str, Any]
    path: Path
    staged: bool = False


@dataclass
class Outcome:
    name: str
    status: str                       # one of STATUSES
    dataset_id: str | None = None
    publisher: str | None = None
    version: int | None = None
    layout: str | None = None
    reason: str = ""
    reason_ja: str = ""

    @classmethod
    def of_error(cls, name: str, exc: AreameshError, status: str = "failed", **kw: Any) -> Outcome:
        return cls(name, status, reason=f"[{exc.code}] {exc.message}",
                   reason_ja=exc.message_ja or exc.message, **kw)


def describe_file(path: Path, facts: CsvFacts, *, publisher: str, code: str | None,
                  municipality: str, layout: Layout | None, dataset_id: str,
                  license: str = DEFAULT_LICENSE, extra: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The full description (with ``source``) of one CSV file."""
    what = layout.title if layout is not None else path.stem
    where = f"{municipality}（{code}）" if code else municipality
    doc: dict[str, Any] = {
        "id": dataset_id, "publisher": publisher,
        "title": {"ja": f"{municipality} {what}"[:200]},
        "description": {"ja": f"{where}の{what}。ファイル {path.name} から一括登録したデータです。"},
        "themes": themes_for(what),
        "keywords": [k for k in (layout.title if layout else None, municipality) if k],
        "schema": schema_of(facts.header, layout),
        "spatial": [code] if code else [],
        "license": license, "access": "open", "offers": OPEN_USE,
        "source": {"adapter": "csv", "path": str(path.absolute()), "encoding": "auto"},
        "source_base": str(path.absolute().parent),
    }
    english = layout.title_en if layout is not None else path.stem if path.stem.isascii() else ""
    if english:
        doc["title"]["en"] = f"{english} ({code or publisher})"[:200]
    if layout is not None and layout.conforms:
        doc.update(layout.declaration())
    doc.update(extra or {})
    return doc


def folder_items(folder: Path, state: NodeState, *, publisher: str | None = None,
                 license: str = DEFAULT_LICENSE) -> list[Item | Outcome]:
    """An ``Item`` per readable CSV file of ``folder`` (not recursive), an ``Outcome`` (failed)
    for each that cannot be read. Files without a code column go to ``publisher`` (default: this
    node's participant)."""
    if not folder.is_dir():
        raise InvalidRequest(f"{folder} is not a folder", message_ja=f"{folder} はフォルダではありません")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    out: list[Item | Outcome] = []
    taken: set[str] = set()
    for path in files:
        try:
            facts = inspect_csv(path)
        except AreameshError as exc:
            out.append(Outcome.of_error(path.name, exc))
            continue
        except OSError as exc:
            out.append(Outcome(path.name, "failed", reason=f"cannot read: {exc.strerror}",
                               reason_ja="ファイルを読めません"))
            continue
        out.append(item_for_file(path, facts, state, publisher=publisher, license=license,
                                 taken=taken))
    return out


def municipality_name(code: str | None, facts: CsvFacts, state: NodeState) -> str:
    if facts.municipality:
        return facts.municipality
    if code == state.participant_id or code is None:
        return state.participant_name
    return place_name(code) or code


def item_for_file(path: Path, facts: CsvFacts, state: NodeState, *, publisher: str | None,
                  license: str, taken: set[str], dataset_id: str | None = None,
                  extra: dict[str, Any] | None = None, display: str | None = None
                  ) -> Item | Outcome:
    """The ``Item`` of one inspected file (ids unique within ``taken``)."""
    layout = match_layout(facts.header)
    pid = facts.code or publisher or state.participant_id
    if dataset_id is None:
        base = f"{pid}-{slug(layout.name).replace('_', '-') if layout else stem_slug(path.stem)}"
        dataset_id = base if base not in taken else f"{base}-{stem_slug(path.stem)}"
    dataset_id = dataset_id[:100].rstrip("-._")
    name = display or path.name
    if not ID_PATTERN.match(dataset_id) or dataset_id in taken:
        return Outcome(name, "failed", dataset_id=dataset_id, publisher=pid,
                       reason=f"no usable dataset id ({dataset_id!r} is invalid or taken)",
                       reason_ja=f"データセットID {dataset_id} を使えません（不正または重複）")
    taken.add(dataset_id)
    doc = describe_file(path, facts, publisher=pid, code=facts.code,
                        municipality=municipality_name(facts.code, facts, state), layout=layout,
                        dataset_id=dataset_id, license=license, extra=extra)
    return Item(name, pid, doc, path)


# ------------------------------------------------------------------------------- the run

@dataclass
class ImportReport:
    outcomes: list[Outcome]
    dry_run: bool
    seconds: float

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for o in self.outcomes if o.status == s) for s in STATUSES}

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "seconds": round(self.seconds, 3), "counts": self.counts(),
                "items": [asdict(o) for o in self.outcomes]}

    def text(self) -> str:
        """The summary table, Japanese then English, and the reasons of what was not imported."""
        head = "一括登録（試行のみ・変更なし） / import (dry run, nothing changed)" if self.dry_run \
            else "一括登録の結果 / import summary"
        counts = self.counts()
        lines = [head, "  " + "  ".join(f"{STATUS_JA[s]}/{s}: {counts[s]}" for s in STATUSES)]
        lines.append("\t".join(["状態/status", "ファイル/file", "ID/id", "提供者/publisher",
                                "版/version", "理由/reason"]))
        for o in self.outcomes:
            reason = f"{o.reason_ja} / {o.reason}" if o.reason else ""
            lines.append("\t".join(str(v) if v not in (None, "") else "-" for v in (
                f"{STATUS_JA[o.status]}/{o.status}", o.name, o.dataset_id, o.publisher,
                o.version, reason)))
        return "\n".join(lines)


class ImportProgress:
    """Progress of an import on stderr: a rich bar on a terminal, one plain line per file
    otherwise (the style of ``connector/transfer/progress.py``); ``quiet`` shows nothing."""

    def __init__(self, quiet: bool = False, out: TextIO | None = None) -> None:
        self.quiet = quiet
        self.out = out or sys.stderr
        self.bar = None
        self.total = self.done_count = 0

    def start(self, total: int) -> None:
        self.total = total
        if self.quiet:
            return
        if self.out.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(SpinnerColumn(), TextColumn("一括登録 / import"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("{task.fields[name]}"),
                                TimeElapsedColumn(), console=Console(file=self.out))
            self.bar.start()
            self.task = self.bar.add_task("import", total=total, name="")
        else:
            print(f"  一括登録 {total} 件 / importing {total} item(s)", file=self.out, flush=True)

    def advance(self, outcome: Outcome) -> None:
        self.done_count += 1
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done_count, name=outcome.name[:40])
        else:
            print(f"  [{self.done_count}/{self.total}] {STATUS_JA[outcome.status]}/"
                  f"{outcome.status} {outcome.name}" + (f" → {outcome.dataset_id}"
                                                       if outcome.dataset_id else ""),
                  file=self.out, flush=True)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _published_form(doc: dict[str, Any]) -> bytes:
    """What the registry would hold, without the connector's own check record."""
    stripped = {k: v for k, v in doc.items() if k not in ("source", "source_base", "source_check")}
    return canonical_json(parse_description(stripped, standard_check=standard_errors))


class Importer:
    """Publishes ``Item``s through one registry channel, idempotently (module docstring)."""

    def __init__(self, data_dir: Path, *, dry_run: bool = False,
                 progress: ImportProgress | None = None,
                 client_factory: Callable[[], Any] | None = None) -> None:
        self.data_dir = data_dir
        self.dry_run = dry_run
        self.progress = progress or ImportProgress(quiet=True)
        self.client_factory = client_factory
        self._client = None
        self._down: Unavailable | None = None   # the registry stopped answering: publish no more
        self._known: set[str] = set()      # this participant and the publishers stored here

    def _client_now(self):
        if self._client is None:
            if self.client_factory is not None:
                self._client = self.client_factory()
            else:
                from connector.registry_client import RegistryClient
                from mesh.keystore import NodeKeyStore

                state = NodeState.load(self.data_dir)
                self._client = RegistryClient(state, NodeKeyStore(self.data_dir / "tls"),
                                              state.registry)
        return self._client

    async def run(self, items: list[Item | Outcome]) -> ImportReport:
        """Every item's outcome, in the items' order. Up to ``CONCURRENCY`` items are checked
        and published at once (the registry's commit is most of a publish's time)."""
        began = time.monotonic()
        self.progress.start(len(items))
        owners = self._local_owners()
        self._known = set(owners.values()) | {NodeState.load(self.data_dir).participant_id}
        for item in items:          # ids decided before anything runs: no two items race for one
            if isinstance(item, Item):
                owners.setdefault(item.doc["id"], item.publisher)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(item: Item | Outcome) -> Outcome:
            if isinstance(item, Item):
                async with gate:
                    outcome = await self._guarded(item, owners)
            else:
                outcome = item
            self.progress.advance(outcome)
            return outcome

        try:
            outcomes = list(await asyncio.gather(*(one(item) for item in items)))
        finally:
            self.progress.finish()
            if self._client is not None:
                await self._client.close()
        return ImportReport(outcomes, self.dry_run, time.monotonic() - began)

    async def _guarded(self, item: Item, owners: dict[str, str]) -> Outcome:
        """``_one``, with any error of this item as its failed outcome."""
        try:
            return await self._one(item, owners)
        except AreameshError as exc:
            return Outcome.of_error(item.name, exc, dataset_id=item.doc["id"],
                                    publisher=item.publisher)
        except OSError as exc:
            return Outcome(item.name, "failed", item.doc["id"], item.publisher,
                           reason=f"{type(exc).__name__}: {exc}",
                           reason_ja="ファイルの読み書きに失敗しました")
        finally:
            if item.staged:
                _discard(item.path)

    def _local_owners(self) -> dict[str, str]:
        """dataset id → publisher, for every dataset this connector publishes."""
        owners = {}
        for pid in all_publishers(self.data_dir):
            folder = self.data_dir / "publishers" / pid / "datasets"
            for p in folder.glob("*.json") if folder.exists() else ():
                owners[p.stem] = pid
        return owners

    async def _one(self, item: Item, owners: dict[str, str]) -> Outcome:
        doc, ident, pid = item.doc, item.doc["id"], item.publisher
        layout = doc.get("standard_type") or (
            "{layout}@{edition}".format(**doc["standard"]) if doc.get("standard") else None)
        if owners.get(ident, pid) != pid:
            return Outcome(item.name, "failed", ident, pid, reason=f"dataset id {ident} is "
                           f"already published here for {owners[ident]}",
                           reason_ja=f"データセットID {ident} は {owners[ident]} が使用しています")
        published_form = _published_form(doc)         # InvalidRequest → failed, with every field
        store = PublisherStore(self.data_dir, pid)
        record_path = store.root / "imports" / f"{ident}.json"
        previous = json.loads(record_path.read_text()) if record_path.exists() else {}
        target = Path(doc["source"]["path"])
        fingerprint = None
        if not item.staged and previous.get("fingerprint"):
            fingerprint = file_fingerprint(item.path, "csv")
        digest = previous["sha256"] if fingerprint and fingerprint == previous.get("fingerprint") \
            else sha256_file(item.path)
        stored = None
        stored_path = store.root / "datasets" / f"{ident}.json"
        if stored_path.exists():
            stored = json.loads(stored_path.read_text())
        if stored is not None and digest == previous.get("sha256") \
                and stored.get("source") == doc["source"] and _published_form(stored) == published_form:
            if not self.dry_run and not item.staged and fingerprint != previous.get("fingerprint"):
                self._record(record_path, digest, file_fingerprint(target, "csv"), item)
            return Outcome(item.name, "unchanged", ident, pid, layout=layout)
        status = "updated" if stored is not None else "added"
        if self.dry_run:
            return Outcome(item.name, status, ident, pid, layout=layout, **({} if pid in self._known else {
                "reason": f"not checked in a dry run: whether this node may publish for {pid} "
                          "(itself or a tenant it hosts) is the registry's decision",
                "reason_ja": f"試行のため未確認: {pid} のために公開できるか（自身または受託先か）"
                             "はレジストリが判断します"}))
        full = {k: v for k, v in doc.items() if k != "source_check"}
        published = parse_description({k: v for k, v in full.items()
                                       if k not in ("source", "source_base")},
                                      standard_check=standard_errors)
        # a download is checked where it was staged, and moved into the publisher's folder only
        # once the registry accepted it: a refused publisher leaves no folder behind
        checked = await check_source(store, {**full, "source": {**full["source"],
                                                                "path": str(item.path)}}, published)
        if checked is not None:
            published["source_check"] = full["source_check"] = checked
        if self._down is not None:
            raise self._down
        try:
            record = await self._client_now().publish_dataset(canonical_json(published))
        except Unavailable as exc:
            self._down = exc
            raise
        except PermissionDenied as exc:
            return Outcome.of_error(item.name, exc, "skipped", dataset_id=ident, publisher=pid,
                                    layout=layout)
        await asyncio.to_thread(self._keep, store, full, item, target, record_path, digest)
        log.info("imported %s (%s) version %d", ident, status, record.version)
        return Outcome(item.name, status, ident, pid, record.version, layout)

    def _keep(self, store: PublisherStore, full: dict[str, Any], item: Item, target: Path,
              record_path: Path, digest: str) -> None:
        """After the registry accepted: the download into place, the description, the record."""
        if item.staged:
            _move(item.path, target)
            item.staged = False
        store.save(full)
        self._record(record_path, digest, file_fingerprint(target, "csv"), item)

    @staticmethod
    def _record(path: Path, digest: str, fingerprint: str, item: Item) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, json.dumps({"sha256": digest, "fingerprint": fingerprint,
                                       "from": item.name}, ensure_ascii=False).encode(), mode=0o600)


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _move(staged: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.replace(staged, target)


async def import_source(data_dir: Path, source: str, *, publisher: str | None = None,
                        dry_run: bool = False, license: str = DEFAULT_LICENSE,
                        progress: ImportProgress | None = None) -> ImportReport:
    """Import a folder of CSV files or harvest a CKAN portal (``http(s)://`` URL)."""
    state = NodeState.load(data_dir)
    if publisher is not None:
        PublisherStore(data_dir, publisher)          # validates the id
    importer = Importer(data_dir, dry_run=dry_run, progress=progress)
    if source.startswith(("http://", "https://")):
        from connector.datasets.ckan_harvest import harvest_items

        with _staging(data_dir, dry_run) as staging:
            items = await harvest_items(source, staging, state, data_dir=data_dir,
                                        publisher=publisher, license=license)
            return await importer.run(items)
    return await importer.run(folder_items(Path(source), state, publisher=publisher,
                                           license=license))


class _staging:
    """A private folder for downloads, removed afterwards: under ``DATA_DIR/import-staging`` (the
    same file system, so a changed file is moved into place), or the system's temporary folder
    for a dry run, which leaves the data directory as it was."""

    def __init__(self, data_dir: Path, dry_run: bool) -> None:
        self.root = None if dry_run else data_dir / "import-staging"

    def __enter__(self) -> Path:
        import tempfile

        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = Path(tempfile.mkdtemp(prefix="import-", dir=self.root))
        return self.path

    def __exit__(self, *exc: object) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)

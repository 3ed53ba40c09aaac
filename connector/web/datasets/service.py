"""What the console's dataset pages ask for, on top of the services the CLI uses.

Datasets live per publisher (``connector/datasets/store.py``). The console adds *drafts*: a
description saved from the form or an upload, validated like ``dataset add`` validates a file,
kept under ``publishers/<id>/drafts/`` (0600) until it is published ("local only"), with the
mapping the operator previews it through. A tenant-scoped account reaches only its tenant's
folder: an id of another publisher is "not found" for it, whatever the URL says.

Source files for the console live under ``publishers/<id>/files/``: a console source names a
path relative to that folder and never leaves it, so a tenant's account cannot read another
tenant's files or the node's keys through a preview. Other adapters (databases, HTTP APIs)
reach the network and are published with the CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.adapters.csv_adapter import CsvSource
from connector.contracts.store import AgreementRow, AgreementStore
from connector.datasets.check import check_source
from connector.datasets.internal_copy import InternalCopies
from connector.datasets.publish import publish_description, refresh, withdraw
from connector.datasets.sources import adapter_source, is_internal
from connector.datasets.store import PublisherStore, all_publishers, checked_id
from connector.translate.mapping import MappingError, Reject, load_mapping
from mesh.clock import iso, utcnow
from mesh.datasets import declared_standard, parse_description, standard_errors
from mesh.errors import (
    AreameshError,
    Conflict,
    FailedPrecondition,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from mesh.files import atomic_write
from mesh.standards import LayoutMatch, detect_layout

CONSOLE_ADAPTERS = ("csv", "ndjson")
PREVIEW_ROWS = 20
PUBLISHED, LOCAL, WITHDRAWN = "published", "local", "withdrawn"


@dataclass
class Entry:
    """One dataset as the console shows it: its state and its description."""

    id: str
    publisher: str
    state: str                       # published | local (a draft only) | withdrawn
    doc: dict[str, Any]              # the full description (with source)
    draft: dict[str, Any] | None     # {description, mapping, saved_at, saved_by} if one exists
    records: int | None = None
    last_refresh: str | None = None

    @property
    def title(self) -> str:
        title = self.doc.get("title")
        return (title.get("ja") or title.get("en") or "") if isinstance(title, dict) else str(title or "")


@dataclass
class Preview:
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    source_columns: list[str] = field(default_factory=list)
    problem: AreameshError | None = None        # the source check's refusal
    mapping_error: AreameshError | None = None
    encoding: str = ""
    no_source: bool = False
    detected: LayoutMatch | None = None       # the layout the header resembles, when none is declared

    @property
    def ok(self) -> bool:
        return self.problem is None and self.mapping_error is None


def not_found(dataset_id: str) -> NotFound:
    return NotFound(f"no dataset {dataset_id!r} on this console",
                    message_ja=f"データセット {dataset_id} はありません", code="unknown_dataset")


def files_dir(store: PublisherStore) -> Path:
    path = store.root / "files"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def check_console_source(store: PublisherStore, doc: dict[str, Any]) -> None:
    """A console source: a file adapter and a path inside the publisher's ``files/``; the
    adapter's own config check (``open_source``) follows."""
    source = doc.get("source")
    if not isinstance(source, dict):
        return
    if source.get("adapter") not in CONSOLE_ADAPTERS:
        raise InvalidRequest(
            f"the console publishes {', '.join(CONSOLE_ADAPTERS)} sources; use the CLI for others",
            message_ja=f"管理画面で使えるアダプタは {'、'.join(CONSOLE_ADAPTERS)} です"
                       "（その他は CLI で公開します）",
            code="adapter_not_in_console", details={"key": "adapter"})
    path = source.get("path")
    base = files_dir(store).resolve()
    if isinstance(path, str) and path and \
            (Path(path).is_absolute() or not (base / path).resolve().is_relative_to(base)):
        raise InvalidRequest(f"source path must be a file under {store.publisher_id}'s files folder",
                             message_ja="ファイルはこの団体の files フォルダ内の相対パスで指定してください",
                             code="path_outside_files", details={"key": "path"})
    adapter_source(store, with_base(store, doc))     # the adapter checks its own keys


def with_base(store: PublisherStore, doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "source_base": str(files_dir(store))}


def validate(doc: Any) -> dict[str, Any]:
    """The CLI's validation (``read_description``'s): ``InvalidRequest`` listing every field."""
    return parse_description({k: v for k, v in doc.items() if k not in ("source_base", "source_check")}
                             if isinstance(doc, dict) else doc, standard_check=standard_errors)


class ConsoleDatasets:
    def __init__(self, data_dir: Path, participant: Callable[[], str],
                 agreements: Callable[[], AgreementStore] | None = None) -> None:
        self.data_dir, self._participant, self._agreements = data_dir, participant, agreements

    @property
    def participant_id(self) -> str:
        """This connector's own participant (the default publisher)."""
        return self._participant()

    def publishers(self, scope: str) -> list[str]:
        if scope:
            return [scope]
        return sorted(set(all_publishers(self.data_dir)) | {self.participant_id})

    def store(self, publisher: str) -> PublisherStore:
        return PublisherStore(self.data_dir, publisher)

    def entries(self, scope: str) -> list[Entry]:
        out = []
        for pid in self.publishers(scope):
            store = self.store(pid)
            ids = {p.stem for folder in ("datasets", "drafts", "withdrawn")
                   if (store.root / folder).is_dir() for p in (store.root / folder).glob("*.json")}
            out += [self._entry(store, i) for i in sorted(ids)]
        return out

    def find(self, scope: str, dataset_id: str) -> Entry:
        """The dataset ``dataset_id`` among the publishers ``scope`` may see, or 404."""
        checked_id(dataset_id)
        for pid in self.publishers(scope):
            store = self.store(pid)
            if _has(store, dataset_id):
                return self._entry(store, dataset_id)
        raise not_found(dataset_id)

    def _entry(self, store: PublisherStore, dataset_id: str) -> Entry:
        draft = self.draft(store, dataset_id)
        for state, folder in ((PUBLISHED, "datasets"), (LOCAL, None), (WITHDRAWN, "withdrawn")):
            if folder is None:
                if draft is None:
                    continue
                doc = draft["description"]
            else:
                path = store.root / folder / f"{dataset_id}.json"
                if not path.exists():
                    continue
                doc = json.loads(path.read_text())
            entry = Entry(dataset_id, store.publisher_id, state, doc, draft)
            self._figures(store, entry)
            return entry
        raise not_found(dataset_id)

    @staticmethod
    def _figures(store: PublisherStore, entry: Entry) -> None:
        times = [(entry.doc.get("source_check") or {}).get("at")]
        copy = InternalCopies(store).current(entry.id) if is_internal(entry.doc) else None
        if copy:
            entry.records = copy["records"]
            times.append(copy["created_at"])
        generation = store.root / "store" / entry.id / "generation.json"
        if generation.exists():
            times.append(iso(_mtime(generation)))
        entry.last_refresh = max((t for t in times if isinstance(t, str)), default=None)

    # ---- drafts -------------------------------------------------------------------------

    @staticmethod
    def draft(store: PublisherStore, dataset_id: str) -> dict[str, Any] | None:
        path = store.root / "drafts" / f"{checked_id(dataset_id)}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def save_draft(self, doc: dict[str, Any], mapping: str, by: str, scope: str = "") -> Entry:
        """Validate as ``dataset add`` does, check the console source, keep it as a draft."""
        published = validate(doc)
        if scope and published["publisher"] != scope:
            raise PermissionDenied(f"this account publishes only for {scope}",
                                   message_ja=f"このアカウントは {scope} のデータセットだけを扱えます",
                                   code="outside_tenant")
        for other in self.publishers(""):
            if other != published["publisher"] and _has(self.store(other), doc["id"]):
                raise Conflict(f"dataset id {doc['id']} belongs to another publisher here",
                               message_ja=f"データセットID {doc['id']} は別の公開者が使っています",
                               code="dataset_id_taken", details={"field": "id"})
        store = self.store(published["publisher"])
        check_console_source(store, doc)
        if mapping.strip():
            load_mapping(mapping.encode())       # a MappingError names the rule
        folder = store.root / "drafts"
        store.ensure()
        folder.mkdir(exist_ok=True, mode=0o700)
        body = {"description": {k: v for k, v in doc.items() if k not in ("source_base", "source_check")},
                "mapping": mapping, "saved_at": iso(utcnow()), "saved_by": by}
        atomic_write(folder / f"{doc['id']}.json",
                     json.dumps(body, ensure_ascii=False, indent=2).encode(), mode=0o600)
        return self._entry(store, doc["id"])

    def drop_draft(self, store: PublisherStore, dataset_id: str) -> None:
        (store.root / "drafts" / f"{checked_id(dataset_id)}.json").unlink(missing_ok=True)

    # ---- actions: the CLI's service calls -----------------------------------------------

    def working_copy(self, entry: Entry) -> dict[str, Any]:
        """What publishing would send: the draft if there is one, else the stored description."""
        doc = entry.draft["description"] if entry.draft else entry.doc
        if entry.draft is not None or "source_base" not in doc:
            doc = with_base(self.store(entry.publisher), doc)
        return doc

    async def publish(self, entry: Entry) -> int:
        doc = self.working_copy(entry)
        published = validate(doc)
        if published["publisher"] != entry.publisher:
            raise InvalidRequest("a draft cannot change its publisher",
                                 message_ja="公開者は変更できません", code="publisher_changed")
        record = await publish_description(self.data_dir, dict(doc), published)
        store = self.store(entry.publisher)
        self._keep_mapping(store, entry.id, self.mapping_of(entry))
        self.drop_draft(store, entry.id)
        return record.version

    def mapping_of(self, entry: Entry) -> str:
        """The mapping the dataset is checked through: the draft's, else the one kept when it
        was published (``mappings/<id>.yaml``)."""
        if entry.draft is not None:
            return entry.draft.get("mapping", "")
        path = self.store(entry.publisher).root / "mappings" / f"{checked_id(entry.id)}.yaml"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    @staticmethod
    def _keep_mapping(store: PublisherStore, dataset_id: str, mapping: str) -> None:
        path = store.root / "mappings" / f"{dataset_id}.yaml"
        if not mapping.strip():
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(exist_ok=True, mode=0o700)
        atomic_write(path, mapping.encode(), mode=0o600)

    async def refresh(self, entry: Entry) -> dict[str, Any]:
        _require_state(entry, PUBLISHED)
        return await refresh(self.data_dir, entry.id)

    async def withdraw(self, entry: Entry) -> int:
        _require_state(entry, PUBLISHED)
        return await withdraw(self.data_dir, entry.id)

    async def save_offer(self, entry: Entry, offer: dict[str, Any]) -> Entry:
        """Add or replace an offer: in the draft, or published again (a new version)."""
        doc = dict(self.working_copy(entry))
        doc["offers"] = [o for o in doc.get("offers", []) if o.get("id") != offer["id"]] + [offer]
        return await self._store_offers(entry, doc)

    @staticmethod
    def offer(entry: Entry, offer_id: str) -> dict[str, Any]:
        """The offer ``offer_id`` of the dataset as the console shows it (the draft's offers
        when there is a draft), or ``unknown_offer`` (404)."""
        doc = entry.draft["description"] if entry.draft else entry.doc
        found = next((o for o in doc.get("offers") or []
                      if isinstance(o, dict) and o.get("id") == offer_id), None)
        if found is None:
            raise NotFound(f"dataset {entry.id} has no offer {offer_id!r}",
                           message_ja=f"データセット {entry.id} に提供条件 {offer_id} はありません",
                           code="unknown_offer")
        return found

    @staticmethod
    def removal_blocked(entry: Entry, offer_id: str) -> FailedPrecondition | None:
        """Why the offer may not be removed, or None. The last offer of a contract dataset
        stays: the catalog requires one (``mesh.datasets``), and a contract dataset without one
        could not be contracted at all. An open dataset may lose its last offer (it stays in
        the catalog; nobody can make a new agreement on it until an offer is added)."""
        doc = entry.draft["description"] if entry.draft else entry.doc
        others = [o for o in doc.get("offers") or [] if isinstance(o, dict) and o.get("id") != offer_id]
        if others or doc.get("access", "open") != "contract":
            return None
        return FailedPrecondition(
            f"offer {offer_id} is the last offer of the contract dataset {entry.id}: a contract "
            "dataset needs at least one; add another offer first, or withdraw the dataset",
            message_ja=f"提供条件 {offer_id} は契約型データセット {entry.id} の最後の提供条件のため"
                       "削除できません。契約型には提供条件が1件以上必要です。先に別の提供条件を"
                       "追加するか、データセットの公開を停止してください",
            code="last_offer_of_contract_dataset")

    async def remove_offer(self, entry: Entry, offer_id: str) -> Entry:
        """Remove an offer as ``save_offer`` changes one: from the draft, or published again
        (a new version without it). Agreements made under it are not touched: each carries the
        policy it was signed with, which is what transfers under it are judged by
        (``connector.transfer.guard``)."""
        self.offer(entry, offer_id)
        blocked = self.removal_blocked(entry, offer_id)
        if blocked is not None:
            raise blocked
        doc = dict(self.working_copy(entry))
        doc["offers"] = [o for o in doc.get("offers", []) if o.get("id") != offer_id]
        return await self._store_offers(entry, doc)

    async def _store_offers(self, entry: Entry, doc: dict[str, Any]) -> Entry:
        if entry.state == PUBLISHED and entry.draft is None:
            published = validate(doc)
            await publish_description(self.data_dir, doc, published)
        else:
            self.save_draft(doc, self.mapping_of(entry), (entry.draft or {}).get("saved_by", ""))
        return self.find(entry.publisher, entry.id)

    async def agreements_under(self, entry: Entry, offer_id: str) -> list[AgreementRow]:
        """This provider's agreements on the offer that are FINALIZED (in force, or ended by
        their own terms without a termination)."""
        if self._agreements is None:
            return []
        return [r for r in await self._agreements().list()
                if r.role == "provider" and r.state == "FINALIZED"
                and r.dataset_id == entry.id and r.offer_id == offer_id]

    async def preview(self, entry: Entry, rows: int = PREVIEW_ROWS) -> Preview:
        """The source check ``dataset add`` runs, then the first ``rows`` records through the
        draft's mapping (if any) with the rows it rejects."""
        store = self.store(entry.publisher)
        doc = self.working_copy(entry)
        mapping_text = self.mapping_of(entry)
        p = Preview()
        if not isinstance(doc.get("source"), dict):     # a catalog-only entry: nothing to read
            p.no_source = True
            return p
        try:
            await check_source(store, doc, validate(doc))
        except InvalidRequest as exc:
            p.problem = exc
            if exc.code != "header_mismatch":
                return p
        source = adapter_source(store, doc)
        try:
            schema = await source.schema()
            batches = source.read(batch_rows=rows)
            try:
                first = await anext(batches, None)
            finally:
                await batches.aclose()
            p.source_columns = list(schema.names)
            if isinstance(source, CsvSource):
                p.encoding = source.encoding or ""
                p.rejects += [Reject(b.row or 0, None, b.text, b.describe(), b.describe())
                              for b in source.rejected]
        except AreameshError as exc:
            p.problem = p.problem or exc
            return p
        finally:
            await source.close()
        p.columns = p.source_columns
        if declared_standard(doc) is None:
            p.detected = detect_layout(p.source_columns)
        if first is not None:
            p.rows = first.to_pylist()
        if mapping_text.strip() and first is not None:
            try:
                compiled = load_mapping(mapping_text.encode())
                compiled.check_input(p.source_columns)
            except MappingError as exc:
                p.mapping_error = exc
                return p
            result = compiled.apply(first, first_row=2)   # the header is row 1, as in a spreadsheet
            p.columns = [f.name for f in compiled.output_schema]
            p.rows = result.batch.to_pylist()
            p.rejects += result.rejects
        return p


def _has(store: PublisherStore, dataset_id: str) -> bool:
    return any((store.root / f / f"{dataset_id}.json").exists()
               for f in ("datasets", "drafts", "withdrawn"))


def _require_state(entry: Entry, state: str) -> None:
    if entry.state != state:
        raise FailedPrecondition(f"dataset {entry.id} is {entry.state}, not {state}",
                                 message_ja=f"データセット {entry.id} は公開中ではありません",
                                 code="wrong_state")


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(os.stat(path).st_mtime, UTC)

"""Views: which data the NGSI-LD facade serves, and whether it may serve it right now.

A view is a node setting, ``DATA_DIR/ngsi-ld/views/<name>.yaml``, one of two kinds::

    # data this connector holds under an agreement (it is the consumer)
    agreement: 7f0c…            # a consumer agreement of this connector
    file: downloads/aed.ndjson  # where 'connector fetch AGREEMENT --out' writes it (ndjson, csv
                                # or arrow; relative to the data directory); each complete fetch
                                # replaces it atomically, so the view shows the latest fetch
    model: builtin:aed          # models.py

    # a dataset this connector serves in internal mode (内部管理): its current encrypted copy
    dataset: himeji-aed
    model: builtin:aed

What is checked at every request (``FacadeData.view_data``), because the facade is a local
re-use of data the provider's policy governs:

- held data: the agreement is this connector's as consumer, FINALIZED, signed by both sides
  (checked against the trust bundle), not expired and not terminated; at least one of the
  policy's permissions has its validity window (``dateTime``) open now; a ``delete`` duty's
  deadline (``elapsedTime`` after the fetch, i.e. the file's time) has not passed. Data under a
  policy that needs residents' consent (personal data) is never served here: consent is judged
  record by record at transfer time for the purpose of the agreement, and the facade cannot
  tell which app serves which purpose.
- internal data: the dataset is this connector's, in internal mode, published (not withdrawn)
  and not personal (its classification is non_personal or anonymised).

A view that fails a check serves nothing (its entities are absent from every answer) and the
reason is logged; ``areamesh connector ngsi-ld view list`` shows it. Counting limits
(``transferCount``, ``recordCount``) bound transfers from the provider and were spent when the
data came; local reads are not transfers and are not metered.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import yaml

from connector.contracts.store import AgreementStore
from connector.datasets.internal_copy import InternalCopies
from connector.datasets.sources import is_internal
from connector.datasets.store import find_dataset
from connector.federation import federated_roots_map
from connector.ngsi_ld.keys import facade_dir
from connector.ngsi_ld.models import EntityModel, load_model
from connector.transfer.progress_hooks import check_consumer_agreement
from mesh.agreements import SignedAgreement
from mesh.clock import iso, utcnow
from mesh.datasets import ID_PATTERN, PERSONAL_CLASSES
from mesh.errors import AreameshError, Conflict, InvalidRequest, NotFound, PermissionDenied
from mesh.files import SECRET_MODE, atomic_write
from mesh.policy import parse_policy

log = logging.getLogger("areamesh.connector.ngsi_ld")

MAX_ROWS = 500_000          # per view: the facade keeps a view's entities in memory
HELD_FORMATS = (".ndjson", ".jsonl", ".csv", ".arrow")


def views_dir(data_dir: Path) -> Path:
    path = facade_dir(data_dir) / "views"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@dataclass(frozen=True)
class ViewSetting:
    name: str
    model: str
    agreement: str | None = None
    file: str | None = None
    dataset: str | None = None

    @property
    def kind(self) -> str:
        return "held" if self.agreement else "internal"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "model": self.model,
                "agreement": self.agreement, "file": self.file, "dataset": self.dataset}


def check_view_name(name: str) -> str:
    if not isinstance(name, str) or not ID_PATTERN.match(name):
        raise InvalidRequest(f"invalid view name {name!r}: 3–100 characters of a-z, 0-9, '.', '_', '-'",
                             message_ja=f"ビュー名 {name!r} が正しくありません", code="invalid_view_name")
    return name


def parse_view(name: str, doc: Any) -> ViewSetting:
    if not isinstance(doc, dict):
        raise InvalidRequest(f"view {name}: expected a mapping", code="invalid_view")
    unknown = set(doc) - {"agreement", "file", "dataset", "model"}
    if unknown:
        raise InvalidRequest(f"view {name}: unknown keys {sorted(unknown)}", code="invalid_view")
    held, internal = bool(doc.get("agreement")), bool(doc.get("dataset"))
    if held == internal:
        raise InvalidRequest(f"view {name}: give either agreement (with file) or dataset",
                             message_ja=f"ビュー {name}：agreement（と file）か dataset の"
                                        "どちらかを指定します",
                             code="invalid_view")
    if held and (not isinstance(doc.get("file"), str) or not doc["file"].endswith(HELD_FORMATS)):
        raise InvalidRequest(f"view {name}: file must name the fetch's output, ending in "
                             f"{', '.join(HELD_FORMATS)}", code="invalid_view")
    if not isinstance(doc.get("model"), str):
        raise InvalidRequest(f"view {name}: model is required (builtin:aed, a file, or flat)",
                             code="invalid_view")
    return ViewSetting(check_view_name(name), doc["model"], doc.get("agreement"), doc.get("file"),
                       doc.get("dataset"))


def add_view(data_dir: Path, setting: ViewSetting, *, replace: bool = False) -> ViewSetting:
    load_model(setting.model, Path(data_dir))        # a model that does not load is refused now
    path = views_dir(data_dir) / f"{setting.name}.yaml"
    if path.exists() and not replace:
        raise Conflict(f"view {setting.name} exists already (--replace to change it)",
                       message_ja=f"ビュー {setting.name} はすでにあります", code="view_exists")
    doc = {k: v for k, v in setting.to_json().items() if k not in ("name", "kind") and v}
    atomic_write(path, yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode(),
                 mode=SECRET_MODE)
    return setting


def list_views(data_dir: Path) -> list[ViewSetting]:
    folder = Path(data_dir) / "ngsi-ld" / "views"
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.yaml")):
        if ID_PATTERN.match(path.stem):
            out.append(parse_view(path.stem, yaml.safe_load(path.read_text(encoding="utf-8"))))
    return out


def remove_view(data_dir: Path, name: str) -> None:
    path = Path(data_dir) / "ngsi-ld" / "views" / f"{check_view_name(name)}.yaml"
    if not path.exists():
        raise NotFound(f"no view {name}", message_ja=f"ビュー {name} はありません", code="unknown_view")
    path.unlink()


@dataclass
class ViewData:
    setting: ViewSetting
    model: EntityModel
    entities: list[dict[str, Any]]
    by_id: dict[str, dict[str, Any]]
    rejected: int
    stamp: Any


class ViewUnavailable(AreameshError):
    """A view that may not (or cannot) serve data now; the reason is for the log and the CLI."""

    code = "view_unavailable"


def _rows_of_file(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix
    if suffix == ".arrow":
        with pa.memory_map(str(path)) as source:
            table = ipc.open_stream(source).read_all()
        return table.slice(0, MAX_ROWS + 1).to_pylist()
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        if suffix == ".csv":
            for row in csv.DictReader(f):
                rows.append(row)
                if len(rows) > MAX_ROWS:
                    break
            return rows
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError:
                    raise ViewUnavailable(f"{path.name} line {number} is not JSON") from None
                if isinstance(row, dict):
                    rows.append(row)
            if len(rows) > MAX_ROWS:
                break
    return rows


def _policy_allows_local_use(signed: SignedAgreement, held_since: datetime, now: datetime) -> None:
    """Raises PermissionDenied when the agreement's policy no longer lets the held data be used."""
    policy = parse_policy(signed.agreement.policy)
    if any(p.requires_consent for p in policy.permissions):
        raise PermissionDenied("the agreement covers personal data (consent per record): the "
                               "facade does not serve it", code="personal_data_not_served")
    windows_open = []
    for permission in policy.permissions:
        ok = True
        for c in permission.constraints:
            if c.left_operand == "dateTime":
                bound = datetime.fromisoformat(str(c.right_operand).replace("Z", "+00:00"))
                if bound.tzinfo is None:
                    bound = bound.replace(tzinfo=UTC)
                ok = ok and {"lt": now < bound, "lteq": now <= bound, "gt": now > bound,
                             "gteq": now >= bound, "eq": now == bound}.get(c.operator, False)
        windows_open.append(ok)
    if not any(windows_open):
        raise PermissionDenied("no permission of the agreement's policy is valid now (dateTime)",
                               code="policy_window_closed")
    for duty in policy.duties:
        if duty.action == "delete" and duty.within is not None and held_since + duty.within <= now:
            raise PermissionDenied(f"the agreement's delete duty fell due at "
                                   f"{iso(held_since + duty.within)} (fetched {iso(held_since)})",
                                   code="delete_duty_due")


class FacadeData:
    """Loads views' entities (cached until the file or the internal copy changes) and checks,
    at every call, that a view may serve."""

    def __init__(self, data_dir: Path, agreements: Callable[[], AgreementStore],
                 roots: Callable[[], list]) -> None:
        """``agreements`` and ``roots`` are asked at each read: the node opens its databases
        and trust bundle after building its HTTP app."""
        self.data_dir, self.agreements, self.roots = Path(data_dir), agreements, roots
        self._cache: dict[str, ViewData] = {}
        self._lock = asyncio.Lock()

    async def available(self, setting: ViewSetting) -> ViewData:
        """The view's data, or ViewUnavailable with the reason."""
        try:
            if setting.kind == "held":
                return await self._held(setting)
            return await self._internal(setting)
        except ViewUnavailable:
            raise
        except AreameshError as exc:
            raise ViewUnavailable(f"view {setting.name}: {exc.message}", code=exc.code) from None

    async def _held(self, s: ViewSetting) -> ViewData:
        assert s.agreement and s.file
        row = await self.agreements().get(s.agreement, role="consumer")
        # a provider of a federated mesh signed with its own mesh's key: checked against that
        # mesh's roots as the trust bundle last brought them (as a fetch checks it)
        check_consumer_agreement(row, self.roots(), federated_roots_map(self.data_dir / "tls"))
        path = Path(s.file) if Path(s.file).is_absolute() else self.data_dir / s.file
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ViewUnavailable(f"view {s.name}: nothing fetched yet under agreement "
                                  f"{s.agreement} ({s.file} does not exist)",
                                  code="nothing_fetched") from None
        held_since = datetime.fromtimestamp(st.st_mtime, UTC)
        _policy_allows_local_use(SignedAgreement.from_json(row.signed), held_since, utcnow())
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino, s)
        return await self._load(s, stamp, lambda: asyncio.to_thread(_rows_of_file, path))

    async def _internal(self, s: ViewSetting) -> ViewData:
        assert s.dataset
        store, doc = await asyncio.to_thread(find_dataset, self.data_dir, s.dataset)
        if not is_internal(doc):
            raise ViewUnavailable(f"view {s.name}: dataset {s.dataset} is not in internal mode "
                                  "(its data stays at the source)", code="not_internal")
        if doc.get("classification") in PERSONAL_CLASSES or doc.get("personal"):
            raise ViewUnavailable(f"view {s.name}: dataset {s.dataset} is personal data; the "
                                  "facade does not serve it", code="personal_data_not_served")
        copies = InternalCopies(store)
        meta = copies.current(s.dataset)
        if meta is None:
            raise ViewUnavailable(f"view {s.name}: dataset {s.dataset} has no internal copy yet",
                                  code="no_internal_copy")

        async def rows() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            async for batch in copies.source(s.dataset).read():
                out.extend(batch.to_pylist())
                if len(out) > MAX_ROWS:
                    break
            return out

        return await self._load(s, (meta["version"], s), rows)

    async def _load(self, s: ViewSetting, stamp: Any, read) -> ViewData:
        cached = self._cache.get(s.name)
        if cached is not None and cached.stamp == stamp:
            return cached
        async with self._lock:
            cached = self._cache.get(s.name)
            if cached is not None and cached.stamp == stamp:
                return cached
            model = load_model(s.model, self.data_dir)
            rows = await read()
            if len(rows) > MAX_ROWS:
                raise ViewUnavailable(f"view {s.name}: more than {MAX_ROWS} rows; the facade keeps "
                                      "a view in memory", code="view_too_large")
            entities, by_id, rejected = [], {}, 0
            for row in rows:
                entity = model.entity(row)
                if entity is None or entity["id"] in by_id:
                    rejected += 1
                    continue
                entities.append(entity)
                by_id[entity["id"]] = entity
            if rejected:
                log.warning("view %s: %d rows gave no entity (no id, or a duplicate id)", s.name,
                            rejected, extra={"view": s.name})
            data = ViewData(s, model, entities, by_id, rejected, stamp)
            self._cache[s.name] = data
            return data

    async def serving(self, allowed: Callable[[str], bool]) -> list[ViewData]:
        """The views ``allowed`` admits that may serve now (the others are logged and left out)."""
        out = []
        for setting in await asyncio.to_thread(list_views, self.data_dir):
            if not allowed(setting.name):
                continue
            try:
                out.append(await self.available(setting))
            except ViewUnavailable as exc:
                self._cache.pop(setting.name, None)
                log.info("NGSI-LD view %s serves nothing: %s", setting.name, exc.message,
                         extra={"view": setting.name, "reason": exc.code})
        return out

"""Fetches started from the console: the same ``Fetcher`` that ``areamesh connector fetch`` runs,
as background tasks the HTTP app owns.

Each fetch writes into ``DATA_DIR/downloads/<name>`` (the name is one plain file name, checked by
``download_path``: no folder, no ``..``, no hidden file), or into a named sink (``SinkFetch``:
staged as arrow under ``DATA_DIR/sinks/staging/``, then loaded in one commit; its phase goes
receiving → loading → done). Its live progress is kept in memory
(``JobProgress``, fed by the fetch's own progress hooks); what lasts is what the fetch itself
records: the consumer's row in ``metering.db`` and, while unfinished, its journal under
``DATA_DIR/transfers/`` (so the same fetch, from here or from the CLI, resumes it).

``FetchJobs.cleanup_ctx`` is registered on the app: when the HTTP server stops, every running
fetch is cancelled and awaited; a cancelled fetch leaves its journal, like a killed CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from connector.metering.store import UsageStore, open_metering_db
from connector.transfer.journal import TransferJournal
from connector.transfer.progress_hooks import Progress
from mesh.clock import iso, utcnow
from mesh.errors import AreameshError, Conflict, InvalidRequest
from mesh.proto.areamesh.v1 import peer_pb2

if TYPE_CHECKING:  # the data plane (pyarrow): imported when the first fetch starts
    from connector.transfer.fetch import Fetcher, FetchResult
    from connector.transfer.sinks import SinkFetch, SinkSetting

log = logging.getLogger("areamesh.connector.web")

DOWNLOADS = "downloads"
MAX_NAME = 120
KEEP_FINISHED = 50          # finished fetches remembered for their pages (newest first)
FORBIDDEN = set('/\\:*?"<>|')


def downloads_dir(data_dir: Path) -> Path:
    return data_dir / DOWNLOADS


def check_file_name(name: str) -> str:
    """One plain file name for the downloads folder, or ``InvalidRequest`` saying why not."""
    def refuse(message: str, ja: str) -> InvalidRequest:
        return InvalidRequest(message, message_ja=ja, code="invalid_file_name",
                              details={"field": "file"})

    if not name:
        raise refuse("give the output file a name", "保存するファイル名を入力してください")
    if len(name) > MAX_NAME:
        raise refuse(f"the file name is longer than {MAX_NAME} characters",
                     f"ファイル名は {MAX_NAME} 文字以内にしてください")
    if name != unicodedata.normalize("NFC", name) or any(
            unicodedata.category(c).startswith("C") for c in name):
        raise refuse("the file name holds control or unusual characters",
                     "ファイル名に使えない文字が含まれています")
    if any(c in FORBIDDEN for c in name) or name.startswith(("."," ", "-")) or name.endswith((" ", ".")):
        raise refuse("a plain file name only: no folder (/ or \\), no ..; it may not begin with "
                     "a dot, a space or a hyphen", "フォルダを含まないファイル名だけを入力してください"
                     "（/ \\ .. や先頭のドット・空白は使えません）")
    if name.lower().endswith(".rejects.csv") or name.lower().endswith(".part"):
        raise refuse("this ending is kept for the fetch's own files",
                     "この末尾はコネクタが使う名前のため使えません")
    return name


def download_path(data_dir: Path, name: str) -> Path:
    """``DATA_DIR/downloads/<name>`` for a checked name; the result never leaves the folder."""
    folder = downloads_dir(data_dir)
    path = folder / check_file_name(name)
    if path.resolve().parent != folder.resolve():    # a symlinked folder, or a name that slipped
        raise InvalidRequest("the file must stay in the downloads folder",
                             message_ja="保存先はダウンロード用フォルダの中に限られます",
                             code="invalid_file_name", details={"field": "file"})
    return path


@dataclass
class JobProgress(Progress):
    """What a console fetch has received so far, read by the pages while it runs."""

    transfer_id: str = ""
    dataset_id: str = ""
    version: str = ""
    incremental: bool = False
    resumed_after: int = 0
    records: int = 0
    written: int = 0
    rejected: int = 0
    bytes: int = 0
    batches: int = 0
    notes: list[str] = field(default_factory=list)
    phase: str = "receiving"          # receiving → loading (a sink only) → done
    loaded: int = 0                   # rows loaded into the sink so far
    load_total: int = 0
    _t0: float = 0.0
    _base: tuple[int, int] = (0, 0)

    def start(self, header: peer_pb2.TransferHeader, journal: TransferJournal) -> None:
        self.transfer_id, self.dataset_id = header.transfer_id, header.dataset_id
        self.version, self.incremental = header.version, header.incremental
        self.resumed_after = journal.acked_seq
        self._t0, self._base = time.monotonic(), (journal.records, journal.bytes)
        self.advance(journal)

    def advance(self, journal: TransferJournal) -> None:
        self.records, self.written, self.bytes = journal.records, journal.written, journal.bytes
        self.rejected, self.batches = journal.rejected_rows, journal.acked_seq

    def note(self, message: str) -> None:
        self.notes = [*self.notes[-9:], message]

    def load_start(self, sink: SinkSetting, rows: int) -> None:
        self.phase, self.load_total, self.loaded = "loading", rows, 0

    def load_advance(self, rows: int) -> None:
        self.loaded = rows

    def load_end(self, rows: int, committed: bool) -> None:
        self.loaded = rows if committed else 0     # an aborted load left nothing behind
        if committed:
            self.phase = "done"

    def rates(self) -> tuple[float, float]:
        """(records, bytes) a second over this stream (a resumed one counts from its resume)."""
        if not self._t0:
            return 0.0, 0.0
        dt = max(time.monotonic() - self._t0, 1e-3)
        return (self.records - self._base[0]) / dt, (self.bytes - self._base[1]) / dt


@dataclass
class FetchJob:
    id: str
    agreement_id: str
    out: Path
    fmt: str
    started_by: str
    started_at: datetime
    progress: JobProgress
    state: str = "starting"           # starting → running → done | failed | cancelled
    ended_at: datetime | None = None
    error: dict[str, str] = field(default_factory=dict)
    result: FetchResult | None = None
    task: asyncio.Task | None = field(default=None, repr=False)
    sink: dict | None = None          # SinkSetting.to_json() of a fetch into a sink

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running")

    def to_json(self) -> dict:
        p = self.progress
        rate_records, rate_bytes = p.rates() if self.active else (0.0, 0.0)
        if self.result is not None and self.result.stream_seconds > 0:   # done: the average
            seconds = self.result.stream_seconds
            rate_records, rate_bytes = self.result.records / seconds, self.result.bytes / seconds
        return {"job": self.id, "state": self.state, "agreement_id": self.agreement_id,
                "file": self.out.name, "format": self.fmt, "transfer_id": p.transfer_id,
                "dataset_id": p.dataset_id, "records": p.records, "written": p.written,
                "rejected": p.rejected, "bytes": p.bytes, "batches": p.batches,
                "resumed_after": p.resumed_after, "rate_records": round(rate_records, 1),
                "rate_bytes": round(rate_bytes, 1), "started_at": iso(self.started_at),
                "ended_at": iso(self.ended_at) if self.ended_at else None,
                "started_by": self.started_by, "error": self.error or None,
                "notes": list(p.notes),
                "truncated": bool(self.result and self.result.truncated),
                "destination": "sink" if self.sink else "file", "sink": self.sink,
                "phase": "done" if self.state == "done" else p.phase, "loaded": p.loaded,
                "load_total": p.load_total,
                "seconds": self.result.seconds if self.result else None}


class FetchJobs:
    """The console's fetches of this process: running ones and the last finished ones."""

    def __init__(self, data_dir: Path, *, fetcher: Callable[..., Fetcher] | None = None) -> None:
        self.data_dir = data_dir
        self.fetcher = fetcher        # None: ``Fetcher``, imported by the first ``start``
        self.jobs: OrderedDict[str, FetchJob] = OrderedDict()

    def get(self, job_id: str) -> FetchJob | None:
        return self.jobs.get(job_id)

    def all(self) -> list[FetchJob]:
        return list(reversed(self.jobs.values()))

    def start(self, agreement_id: str, out: Path | None, *, fmt: str, service: str = "",
              component: str = "", started_by: str = "", sink: str | None = None) -> FetchJob:
        """Start ``Fetcher(...).run()`` in the background, or ``SinkFetch(...).run()`` when
        ``sink`` names one (then ``out`` is ignored). The agreement is checked by the caller
        first, and again by the fetch itself."""
        progress = JobProgress()
        setting = None
        if sink is not None:
            from connector.transfer.sinks import SinkFetch

            fetcher: Fetcher | SinkFetch = SinkFetch(
                self.data_dir, agreement_id, sink, progress=progress, service=service,
                component=component, fetcher=self.fetcher)
            out, fmt, setting = fetcher.staging, "arrow", fetcher.setting
        assert out is not None
        for job in self.jobs.values():
            if job.active and setting is not None and (job.sink or {}).get("name") == sink:
                raise Conflict(f"a fetch into sink {sink} is running already",
                               message_ja=f"出力先 {sink} への取得はすでに実行中です",
                               code="fetch_running", details={"field": "sink", "job": job.id})
            if job.active and job.out == out:
                raise Conflict(f"a fetch into {out.name} is running already",
                               message_ja=f"{out.name} への取得はすでに実行中です",
                               code="fetch_running", details={"field": "file", "job": job.id})
        if setting is None:
            out.parent.mkdir(mode=0o700, exist_ok=True)
            if self.fetcher is None:
                from connector.transfer.fetch import Fetcher  # loads pyarrow: only once a fetch starts

                self.fetcher = Fetcher
            fetcher = self.fetcher(self.data_dir, agreement_id, out, fmt=fmt, progress=progress,
                                   service=service, component=component)
        job = FetchJob(secrets.token_hex(8), agreement_id, out, fmt, started_by, utcnow(), progress,
                       sink=setting.to_json() if setting else None)
        job.task = asyncio.create_task(self._run(job, fetcher), name=f"console-fetch-{job.id}")
        self.jobs[job.id] = job
        self._forget_old()
        return job

    async def _run(self, job: FetchJob, fetcher: Fetcher | SinkFetch) -> None:
        job.state = "running"
        try:
            result = await fetcher.run()
            job.result = getattr(result, "fetch", result)   # a SinkFetchResult holds the fetch's
            job.state = "done"
            log.info("console fetch %s complete", job.id,
                     extra={"agreement": job.agreement_id, "records": job.result.records})
        except asyncio.CancelledError:
            job.state = "cancelled"
            raise
        except AreameshError as exc:
            job.state = "failed"
            job.error = {"code": exc.code, "message": exc.message,
                         "message_ja": exc.message_ja or exc.message}
            log.warning("console fetch %s failed: %s", job.id, exc.message,
                        extra={"agreement": job.agreement_id})
        except Exception as exc:  # a bug must not vanish silently in a background task
            job.state = "failed"
            job.error = {"code": "internal", "message": "the fetch stopped unexpectedly",
                         "message_ja": "取得が予期せず停止しました"}
            log.exception("console fetch %s crashed: %s", job.id, exc)
        finally:
            job.ended_at = utcnow()

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if not j.active]
        for job in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self.jobs[job.id]

    async def close(self) -> None:
        """Cancel the running fetches and wait for them. Each keeps its journal (it resumes from
        its last acknowledgement); its row in ``metering.db`` is marked interrupted, or it would
        read as running until the fetch is resumed."""
        running = [j for j in self.jobs.values() if j.task and not j.task.done()]
        for job in running:
            job.task.cancel()
        for job in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job.task
        cut = [j for j in running if j.progress.transfer_id]
        if not cut:
            return
        async with open_metering_db(self.data_dir) as db:
            for job in cut:
                p = job.progress
                await UsageStore(db).progress(p.transfer_id, records=p.records, bytes=p.bytes,
                                              batches=p.batches, status="interrupted")

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        yield
        await self.close()

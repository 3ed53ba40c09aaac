"""How ``connector fetch`` shows a transfer: a rich progress bar on a terminal, plain lines
(about one a second) otherwise, so logs and the demo show progress too. Both go to stderr.
A fetch into a sink (``--sink``) shows its loading phase the same way (``load_*``: the
``LoadProgress`` hooks of ``connector/transfer/sinks.py``)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from connector.transfer.journal import TransferJournal
from connector.transfer.progress_hooks import Progress as ProgressBase
from mesh.proto.areamesh.v1 import peer_pb2

if TYPE_CHECKING:
    from connector.transfer.sinks import SinkSetting


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


class LineProgress(ProgressBase):
    def __init__(self, out: TextIO | None = None, every: float = 1.0) -> None:
        self.out = out or sys.stderr
        self.every = every
        self._t0 = self._last = 0.0
        self._base = (0, 0)
        self._journal: TransferJournal | None = None
        self._load_total = 0

    def _line(self, journal: TransferJournal, final: bool = False) -> None:
        dt = max(time.monotonic() - self._t0, 1e-6)
        records, size = journal.records - self._base[0], journal.bytes - self._base[1]
        label = "受信完了 / received" if final else "受信中 / receiving"
        print(f"  {label}: {journal.records:,} 件 / records, {_mb(journal.bytes)}, "
              f"{records / dt:,.0f} 件/s, {size / dt / 1e6:,.1f} MB/s", file=self.out, flush=True)

    def start(self, header: peer_pb2.TransferHeader, journal: TransferJournal) -> None:
        self._t0 = self._last = time.monotonic()
        self._base = (journal.records, journal.bytes)
        kind = "差分 / incremental" if header.incremental else "全件 / full"
        resumed = f", バッチ {journal.acked_seq} の次から再開 / resuming" if journal.acked_seq else ""
        print(f"  転送 {header.transfer_id[:8]} 開始 / started: {header.dataset_id} "
              f"@ {header.version} ({kind}{resumed})", file=self.out, flush=True)

    def advance(self, journal: TransferJournal) -> None:
        self._journal = journal
        if time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self._line(journal)

    def note(self, message: str) -> None:
        print(f"  {message}", file=self.out, flush=True)

    def done(self) -> None:
        if self._journal is not None:
            self._line(self._journal, final=True)

    def load_start(self, sink: SinkSetting, rows: int) -> None:
        self._t0 = self._last = time.monotonic()
        self._load_total = rows
        print(f"  出力先へ読み込み中 / loading into sink {sink.describe()}: {rows:,} 件 / rows",
              file=self.out, flush=True)

    def load_advance(self, rows: int) -> None:
        if time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            print(f"  読み込み中 / loading: {rows:,} / {self._load_total:,} 件 / rows",
                  file=self.out, flush=True)

    def load_end(self, rows: int, committed: bool) -> None:
        if not committed:
            print(f"  読み込み中止 / loading aborted after {rows:,} 件 / rows (nothing changed)",
                  file=self.out, flush=True)
            return
        dt = max(time.monotonic() - self._t0, 1e-6)
        print(f"  読み込み完了 / loaded: {rows:,} 件 / rows, {rows / dt:,.0f} 件/s (committed)",
              file=self.out, flush=True)


class RichProgress(ProgressBase):
    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                            TextColumn("{task.fields[records]:>12,} 件"), DownloadColumn(),
                            TransferSpeedColumn(), TextColumn("{task.fields[rate]:>10,.0f} 件/s"),
                            TimeElapsedColumn(), console=self.console, transient=False)
        self.task = None
        self._t0 = 0.0
        self._base = 0

    def start(self, header: peer_pb2.TransferHeader, journal: TransferJournal) -> None:
        self._t0, self._base = time.monotonic(), journal.records
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task(f"{header.dataset_id}", total=None, records=journal.records,
                                          rate=0.0, completed=journal.bytes)

    def advance(self, journal: TransferJournal) -> None:
        rate = (journal.records - self._base) / max(time.monotonic() - self._t0, 1e-6)
        self.bar.update(self.task, completed=journal.bytes, records=journal.records, rate=rate)

    def note(self, message: str) -> None:
        self.console.print(message)

    def done(self) -> None:
        self.bar.stop()

    def load_start(self, sink: SinkSetting, rows: int) -> None:
        self.load_bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=self.console,
                                 transient=False)
        self.load_bar.start()
        self.load_task = self.load_bar.add_task(f"→ {sink.name} ({sink.adapter})", total=rows)

    def load_advance(self, rows: int) -> None:
        self.load_bar.update(self.load_task, completed=rows)

    def load_end(self, rows: int, committed: bool) -> None:
        self.load_bar.update(self.load_task, completed=rows)
        self.load_bar.stop()


def progress_for_terminal(quiet: bool = False) -> ProgressBase:
    if quiet:
        return ProgressBase()
    return RichProgress() if sys.stderr.isatty() else LineProgress()

"""Starting and stopping areamesh processes: the demo and the integration tests use this.

A served component prints one JSON line ``{"event": "ready", ...ports}`` on stdout when it
listens; ``start`` waits for that line (no sleeping and hoping), ``stop`` sends SIGTERM and
waits, killing only if the process ignores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def areamesh_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "areamesh", *args]


class ProcessFailed(RuntimeError):
    pass


class ManagedProcess:
    def __init__(self, name: str, args: Sequence[str], *, log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}
        self._log = None

    async def start(self, timeout: float = 30.0) -> dict[str, Any]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = await self._spawn()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self.proc.stdout.readline()
                    if not line:
                        await self.proc.wait()
                        raise ProcessFailed(f"{self.name} exited with {self.proc.returncode} "
                                            f"before it was ready; log:\n{self.log_tail()}")
                    with contextlib.suppress(ValueError):
                        msg = json.loads(line)
                        if isinstance(msg, dict) and msg.get("event") == "ready":
                            self.ready = msg
                            return msg
        except TimeoutError:
            await self.stop()
            raise ProcessFailed(f"{self.name} not ready within {timeout}s; log:\n"
                                f"{self.log_tail()}") from None

    async def _spawn(self) -> asyncio.subprocess.Process:
        """The process, in a session of its own, stdout a pipe, stderr the log."""
        return await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.PIPE, stderr=self._log, env=self.env,
            start_new_session=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code. A process that had already
        exited is reported on stderr with its log's tail, so that a caller whose calls failed
        sees why (a test shows it beside its failure)."""
        if self.proc is None:
            return None
        if self.proc.returncode is not None and self._log:
            print(f"{self.name} had exited with {self.proc.returncode} before it was stopped; "
                  f"log:\n{self.log_tail()}", file=sys.stderr)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode


async def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0
                  ) -> tuple[int, str, str]:
    """Run one ``areamesh`` command to completion: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *areamesh_command(*args), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        # timed out, or the caller was stopped: the command is asked to stop, so that what it
        # started stops too (the demo does), then killed; never left running on its own
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()

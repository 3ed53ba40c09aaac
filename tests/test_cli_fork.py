"""The test harness's forked commands (tests/cli_fork.py) behave as cold ones would: a server
forked from the zygote is a process of its own, in its own session, stopped by SIGTERM with its
own exit code, killed by SIGKILL as ``-9``, its stderr in its log; a CLI call that finishes is
not held open by a server forked before it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from .cli_fork import ForkedServer, _ForkedChild, run_cli
from .conftest import MeshHarness

pytestmark = pytest.mark.integration


def _parent(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


async def test_a_forked_registry_is_its_own_process_and_stops_with_its_own_code(
        harness: MeshHarness):
    await harness.start_registry()
    proc = harness.registry
    assert isinstance(proc, ForkedServer) and isinstance(proc.proc, _ForkedChild)
    pid = proc.proc.pid
    assert _parent(pid) != os.getpid()                     # the zygote's child, not ours
    assert os.getpgid(pid) == pid                          # in a session of its own
    started = time.monotonic()
    rc, out, err = await run_cli("registry", "participant", "list", "--data-dir",
                                 str(harness.registry_dir))
    assert rc == 0, err                                    # not held open by the server
    assert "270008" in out, out
    assert time.monotonic() - started < 30
    assert await proc.stop() == 0                          # SIGTERM: a clean stop
    assert "registry stopped" in proc.log_path.read_text()
    assert not proc.running


async def test_a_forked_registry_killed_reports_minus_nine(harness: MeshHarness):
    await harness.start_registry()
    proc = harness.registry
    os.killpg(proc.proc.pid, signal.SIGKILL)
    assert await proc.proc.wait() == -signal.SIGKILL
    assert proc.proc.returncode == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        proc.proc.send_signal(signal.SIGTERM)              # gone: as asyncio's Process says


async def test_a_cli_call_reports_its_exit_code():
    rc, _, err = await run_cli("registry", "participant", "list", "--data-dir", "/nonexistent")
    assert rc != 0 and err

"""A demo stopped while it starts up (SIGTERM, as a timeout or a service manager sends) stops
every process it started, as Ctrl-C does."""

from __future__ import annotations

import asyncio
import signal

import pytest

from areamesh.processes import areamesh_command

from .conftest import wait_for
from .test_demo_federation import _processes_mentioning

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_sigterm_during_start_up_leaves_no_process(tmp_path):
    work = tmp_path / "demo"
    demo = await asyncio.create_subprocess_exec(
        *areamesh_command("demo", "--once", "--workdir", str(work)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async def children_started():     # the registry, then a connector
            return len([p for p in _processes_mentioning(str(work))
                        if not p.startswith(f"{demo.pid}:")]) >= 2

        await wait_for(children_started, timeout=120, what="the demo to start its processes")
        demo.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            out, _ = await demo.communicate()
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
    assert demo.returncode == 128 + signal.SIGTERM, out.decode()
    assert "stopped by SIGTERM" in out.decode()
    assert _processes_mentioning(str(work)) == []

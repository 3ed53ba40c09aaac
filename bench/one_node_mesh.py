"""For the benchmarks: a registry serving on 127.0.0.1 with 姫路市 (282014) certified, and one
connector node of it joined (not serving), in a folder of the caller's. Imported by the bench
scripts beside it (``python bench/<script>.py`` puts this folder on the path)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from proc_stats import cpu_seconds

from areamesh.processes import ManagedProcess, areamesh_command, run_cli


async def cli(*args: str) -> str:
    rc, out, err = await run_cli(*args)
    if rc:
        raise SystemExit(f"areamesh {' '.join(args[:3])} failed: {err}")
    return out.strip()


def registry_cpu_seconds(root: Path) -> float:
    """CPU time (user + system) the registry of ``one_node_mesh(root)`` has used so far: a
    figure that, unlike wall time, hardly moves when other work shares the machine."""
    return cpu_seconds(int((root / "registry.pid").read_text()))


@asynccontextmanager
async def one_node_mesh(root: Path) -> AsyncIterator[Path]:
    """Yields the joined node's data directory; the registry stops on exit."""
    reg = root / "registry"
    await cli("registry", "init", "--data-dir", str(reg), "--name", "bench", "--mesh-id", "bench")
    await cli("registry", "participant", "add", "--data-dir", str(reg), "--id", "282014",
              "--name", "姫路市", "--type", "municipality")
    await cli("registry", "participant", "certify", "--data-dir", str(reg), "--id", "282014")
    proc = ManagedProcess("registry", areamesh_command(
        "registry", "serve", "--data-dir", str(reg), "--grpc", "127.0.0.1:0", "--http",
        "127.0.0.1:0"), log_path=root / "registry.log")
    ready = await proc.start()
    (root / "registry.pid").write_text(str(proc.proc.pid))   # for registry_cpu_seconds
    try:
        token = await cli("registry", "token", "create", "--data-dir", str(reg),
                          "--participant", "282014")
        node = root / "node"
        await cli("connector", "join", "--data-dir", str(node), "--registry",
                  f"127.0.0.1:{ready['grpc_port']}", "--enrol",
                  f"127.0.0.1:{ready['enrol_port']}", "--token", token, "--name", "main")
        yield node
    finally:
        await proc.stop()

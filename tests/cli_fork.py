"""``areamesh`` CLI calls for the tests, forked from a warm process instead of started cold.

A cold ``python -m areamesh …`` spends about a second importing (click, aiohttp, grpc,
cryptography, the stores) before it does a few milliseconds of work, and the integration tests
make thousands of such calls. Here one *zygote* per test process imports all of that once and
forks a child per call. The child is still a separate process with its own event loop, its own
session, exit code, stdout and stderr (pipes the caller hands over with ``SCM_RIGHTS``), and the
caller's environment and working directory, so a test sees what it would see from a cold start.

The zygote never starts a thread (forking a threaded process is unsafe): it checks that before
every fork. Set ``AREAMESH_TEST_COLD_CLI=1`` to run every call cold instead.

Run as ``python -m tests.cli_fork SOCKET``: the zygote itself.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from areamesh.processes import run_cli as cold_run_cli

PRELOAD = ("areamesh.cli", "registry.cli", "registry.cli_common", "registry.operators.admin",
           "connector.cli", "mesh.web.sessions", "aiohttp", "grpc", "cryptography.x509", "yaml",
           "aiosqlite")
MAX_MESSAGE = 1 << 20


# --- the zygote -----------------------------------------------------------------------------

def _serve(path: str) -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)          # children are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        conn, _ = listener.accept()
        try:
            message, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 2)
            request = json.loads(message)
        except (OSError, ValueError):
            conn.close()
            continue
        if threading.active_count() != 1:                  # never fork a threaded process
            conn.sendall(b"threads\n")
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            listener.close()
            _child(conn, fds, request)                     # never returns
        conn.close()
        for fd in fds:
            os.close(fd)


def _child(conn: socket.socket, fds: list[int], request: dict) -> None:
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in (devnull, *fds):
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        import random

        random.seed()                                      # not the zygote's sequence
        conn.sendall(f"{os.getpid()}\n".encode())
        sys.argv = ["areamesh", *request["args"]]
        from areamesh.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        import logging

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    finally:
        with contextlib.suppress(Exception):
            conn.sendall(f"exit {code}\n".encode())
        os._exit(code)


# --- the caller -----------------------------------------------------------------------------

class _Zygote:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.folder = ""
        self.path = ""

    def address(self) -> str:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            return self.path

    def _start(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="am-zygote-")
        self.path = os.path.join(self.folder, "s")
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.cli_fork", self.path],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=root,
                                     env={**os.environ, "PYTHONPATH": str(root)},
                                     start_new_session=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("the CLI zygote did not start")
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self.folder)


_ZYGOTE = _Zygote()


class _Cold(Exception):
    """The zygote could not fork this call: run it cold."""


def _call(args: tuple[str, ...], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    deadline = time.monotonic() + timeout
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = 0
    try:
        sock.connect(_ZYGOTE.address())
        request = {"args": list(args), "env": env, "cwd": os.getcwd()}
        socket.send_fds(sock, [json.dumps(request).encode()], [out_w, err_w])
        os.close(out_w)
        os.close(err_w)
        out_w = err_w = -1
        chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
        control = b""
        sel = selectors.DefaultSelector()
        for fd in (out_r, err_r, sock.fileno()):
            sel.register(fd, selectors.EVENT_READ)
        open_fds = 3
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                raise TimeoutError(f"areamesh {' '.join(args)} did not finish in {timeout}s")
            for key, _ in sel.select(min(left, 1.0)):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fd)
                    open_fds -= 1
                elif key.fd == sock.fileno():
                    control += data
                    if control == b"threads\n":
                        raise _Cold()
                    if not pid and b"\n" in control:
                        pid = int(control.split(b"\n", 1)[0])
                else:
                    chunks[key.fd].append(data)
        lines = control.decode().split("\n")
        exits = [line for line in lines if line.startswith("exit ")]
        code = int(exits[-1].split()[1]) if exits else -signal.SIGKILL
        return code, b"".join(chunks[out_r]).decode(), b"".join(chunks[err_r]).decode()
    finally:
        sock.close()
        for fd in (out_r, err_r, out_w, err_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


async def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0
                  ) -> tuple[int, str, str]:
    """Like ``areamesh.processes.run_cli`` (exit code, stdout, stderr), forked from the zygote."""
    if os.environ.get("AREAMESH_TEST_COLD_CLI"):
        return await cold_run_cli(*args, env=env, timeout=timeout)
    try:
        return await asyncio.to_thread(_call, args, {**os.environ, **(env or {})}, timeout)
    except _Cold:
        return await cold_run_cli(*args, env=env, timeout=timeout)


if __name__ == "__main__":
    _serve(sys.argv[1])

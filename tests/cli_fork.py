"""``areamesh`` commands for the tests, forked from a warm process instead of started cold.

A cold ``python -m areamesh …`` spends one to two CPU-seconds importing (click, aiohttp, grpc,
cryptography, the stores) before it does a few milliseconds of work, and the integration tests
make thousands of CLI calls and start hundreds of registries and connectors. Here one *zygote*
per test process imports all of that once and forks a child per command. The child is still a
separate process in its own session, with its own event loop, exit code, stdout and stderr
(descriptors the caller hands over with ``SCM_RIGHTS``), and the caller's environment and working
directory, so a test sees what it would see from a cold start.

The zygote reaps its children and tells each caller its child's pid, then its exit code (negative
for a signal, as ``subprocess`` reports it). ``run_cli`` waits for a command to finish;
``ForkedServer`` is a ``ManagedProcess`` whose ``registry serve`` or ``connector serve`` runs in
such a child.

The zygote never starts a thread (forking a threaded process is unsafe): it checks that before
every fork. Set ``AREAMESH_TEST_COLD_CLI=1`` to run every command cold instead.

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

from areamesh.processes import ManagedProcess, areamesh_command
from areamesh.processes import run_cli as cold_run_cli

PRELOAD = ("areamesh.cli", "registry.cli", "registry.cli_common", "registry.operators.admin",
           "connector.cli", "mesh.web.sessions", "registry.app", "connector.app", "aiohttp",
           "grpc", "cryptography.x509", "yaml", "aiosqlite")     # not pyarrow: it starts threads
MAX_MESSAGE = 1 << 20


# --- the zygote -----------------------------------------------------------------------------

def _serve(path: str) -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)                           # a child's exit wakes the select
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, socket.socket] = {}                # pid -> its caller's control socket
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _ in sel.select():
            if key.fileobj is listener:
                _fork_one(listener, children, (wake_r, wake_w))
            else:
                os.read(wake_r, 4096)
        _reap(children)


def _threads() -> int:
    """This process's threads, native ones included (an import may start some)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _fork_one(listener: socket.socket, children: dict[int, socket.socket],
              wake: tuple[int, int]) -> None:
    conn, _ = listener.accept()
    try:
        message, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 2)
        request = json.loads(message)
    except (OSError, ValueError):
        conn.close()
        return
    if _threads() != 1 or len(fds) != 2:                    # never fork a threaded process
        with contextlib.suppress(OSError):
            conn.sendall(b"threads\n" if len(fds) == 2 else b"no descriptors\n")
        conn.close()
        for fd in fds:
            os.close(fd)
        return
    pid = os.fork()
    if pid == 0:
        listener.close()
        for other in children.values():                    # their callers wait for EOF
            other.close()
        conn.close()
        signal.set_wakeup_fd(-1)
        for fd in wake:
            os.close(fd)
        _child(fds, request)                               # never returns
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(f"{pid}\n".encode())
    except OSError:
        pass                                               # the caller is gone; still reaped
    children[pid] = conn


def _reap(children: dict[int, socket.socket]) -> None:
    """Tell each finished child's caller its exit code, then close that caller's socket."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            conn.close()


def _child(fds: list[int], request: dict) -> None:
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


def _ask(sock: socket.socket, address: str, args, env: dict[str, str],
         fds: tuple[int, int]) -> None:
    """Ask the zygote to fork ``areamesh <args>`` with ``fds`` as its stdout and stderr, in
    this process's working directory."""
    sock.connect(address)
    request = {"args": list(args), "env": env, "cwd": os.getcwd()}
    socket.send_fds(sock, [json.dumps(request).encode()], list(fds))


def _call(args: tuple[str, ...], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    deadline = time.monotonic() + timeout
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = 0
    try:
        _ask(sock, _ZYGOTE.address(), args, env, (out_w, err_w))
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


class _ForkedChild:
    """What ``ManagedProcess`` needs of ``asyncio.subprocess.Process``, for a zygote's child:
    pid, stdout, returncode, wait, signals. The child is in its own session (pgid = pid)."""

    def __init__(self, pid: int, stdout: asyncio.StreamReader, control: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        self._exited = asyncio.get_running_loop().create_future()
        self._watch = asyncio.ensure_future(self._watch_exit(control, writer))

    async def _watch_exit(self, control: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        code = -signal.SIGKILL                             # no word: the zygote itself died
        try:
            while line := await control.readline():
                if line.startswith(b"exit "):
                    code = int(line.split()[1])
        finally:
            writer.close()
            self.returncode = code
            if not self._exited.done():
                self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            raise ProcessLookupError(self.pid)
        os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


async def _fork_server(args: list[str], env: dict[str, str], stderr_fd: int) -> _ForkedChild:
    """``areamesh <args>`` forked from the zygote: stdout a pipe to us, stderr ``stderr_fd``."""
    loop = asyncio.get_running_loop()
    address = await asyncio.to_thread(_ZYGOTE.address)
    out_r, out_w = os.pipe()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _ask(sock, address, args, env, (out_w, stderr_fd))
    except BaseException:
        sock.close()
        os.close(out_r)
        raise
    finally:
        os.close(out_w)
    sock.setblocking(False)
    control, writer = await asyncio.open_unix_connection(sock=sock)
    first = await control.readline()
    if not first.strip().isdigit():                       # b"threads\n": it could not fork
        writer.close()
        os.close(out_r)
        raise _Cold()
    stdout = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdout),
                                 os.fdopen(out_r, "rb", 0))
    return _ForkedChild(int(first), stdout, control, writer)


class ForkedServer(ManagedProcess):
    """A ``ManagedProcess`` for ``areamesh_command(...)`` whose process is forked from the
    zygote instead of started cold; anything else (or ``AREAMESH_TEST_COLD_CLI``) starts as
    ``ManagedProcess`` does."""

    async def _spawn(self):
        prefix = areamesh_command()
        if os.environ.get("AREAMESH_TEST_COLD_CLI") or self.args[:len(prefix)] != prefix:
            return await super()._spawn()
        try:
            return await _fork_server(self.args[len(prefix):], self.env, self._log.fileno())
        except _Cold:
            return await super()._spawn()


if __name__ == "__main__":
    _serve(sys.argv[1])

"""Tests for mesh/files.py: atomic writes and secret files."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mesh.files import SECRET_MODE, atomic_write, read_secret, write_secret


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def test_atomic_write_creates_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write(target, b"hello")
    assert target.read_bytes() == b"hello"


def test_atomic_write_replaces_content(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_bytes(b"old content that is longer than the new one")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"


def test_atomic_write_replaces_the_file_not_its_bytes(tmp_path: Path) -> None:
    """A rename, not an in-place rewrite: a hard link to the old file keeps the old bytes."""
    target = tmp_path / "a.txt"
    target.write_bytes(b"old")
    link = tmp_path / "old-link"
    os.link(target, link)
    old_inode = os.stat(target).st_ino
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert link.read_bytes() == b"old"
    assert os.stat(target).st_ino != old_inode


def test_atomic_write_large_and_empty(tmp_path: Path) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)
    atomic_write(tmp_path / "big", big)
    assert (tmp_path / "big").read_bytes() == big
    atomic_write(tmp_path / "empty", b"")
    assert (tmp_path / "empty").read_bytes() == b""


def test_atomic_write_accepts_bytes_like(tmp_path: Path) -> None:
    atomic_write(tmp_path / "ba", bytearray(b"abc"))
    atomic_write(tmp_path / "mv", memoryview(b"xyz"))
    assert (tmp_path / "ba").read_bytes() == b"abc"
    assert (tmp_path / "mv").read_bytes() == b"xyz"


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    for i in range(3):
        atomic_write(target, f"v{i}".encode())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert target.read_bytes() == b"v2"


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_failed_rename_keeps_old_file_and_leaves_no_temp(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.txt"
    target.write_bytes(b"old")

    def boom(src: object, dst: object) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o640, 0o400, 0o755])
def test_atomic_write_respects_mode(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "f"
    with umask(0o077):  # the umask must not narrow the mode asked for
        atomic_write(target, b"x", mode=mode)
    assert mode_of(target) == mode


def test_atomic_write_default_mode_is_0644(tmp_path: Path) -> None:
    target = tmp_path / "f"
    with umask(0o000):
        atomic_write(target, b"x")
    assert mode_of(target) == 0o644


def test_atomic_write_sets_mode_on_replace(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    os.chmod(target, 0o666)
    atomic_write(target, b"new", mode=0o600)
    assert mode_of(target) == 0o600


def test_atomic_write_creates_missing_parent(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c" / "file.txt"
    atomic_write(target, b"deep")
    assert target.read_bytes() == b"deep"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]


def test_concurrent_writes_to_one_path(tmp_path: Path) -> None:
    """Threads of one process writing the same file: no errors, one whole payload wins."""
    target = tmp_path / "shared"
    payloads = [bytes([65 + i]) * 100_000 for i in range(6)]
    errors: list[BaseException] = []

    def writer(data: bytes) -> None:
        for _ in range(15):
            try:
                atomic_write(target, data)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in payloads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]


def test_write_secret_is_0600(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    write_secret(target, b"secret")
    assert SECRET_MODE == 0o600
    assert mode_of(target) == 0o600
    assert target.read_bytes() == b"secret"


def test_write_secret_is_0600_with_permissive_umask(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    before = os.umask(0o022)
    os.umask(before)
    with umask(0o000):
        write_secret(target, b"secret")
    assert mode_of(target) == 0o600
    # the umask was restored
    now = os.umask(before)
    os.umask(now)
    assert now == before


def test_write_secret_narrows_an_existing_world_readable_file(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    write_secret(target, b"new")
    assert mode_of(target) == 0o600
    assert read_secret(target) == b"new"


def test_temp_file_of_a_secret_is_never_readable_by_others(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Look at the temp file just before the rename: it must already be 0600."""
    target = tmp_path / "key.pem"
    seen: list[int] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(mode_of(Path(src)))
        assert Path(src).read_bytes() == b"secret"
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    with umask(0o000):
        write_secret(target, b"secret")
    assert seen == [0o600]


def test_read_secret_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    write_secret(target, b"\x00\x01binary")
    assert read_secret(target) == b"\x00\x01binary"


@pytest.mark.parametrize("mode", [0o400, 0o600, 0o700])
def test_read_secret_accepts_owner_only_modes(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"ok")
    os.chmod(target, mode)
    assert read_secret(target) == b"ok"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o601, 0o610])
def test_read_secret_refuses_group_or_other_access(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"secret")
    os.chmod(target, mode)
    with pytest.raises(PermissionError) as ei:
        read_secret(target)
    msg = str(ei.value)
    assert "chmod 600" in msg
    assert str(target) in msg
    assert oct(mode) in msg


def test_read_secret_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_secret(tmp_path / "missing")

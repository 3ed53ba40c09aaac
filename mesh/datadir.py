"""Check a data directory before a server starts on it, so that ``serve`` refuses an unusable
one with a message naming the path and what is wrong, instead of a traceback half-way through
start-up.

Unusable: missing or not a folder; not readable, writable and searchable by this user; writable
by every user (anyone could replace its keys or databases); not initialised (a file the role
needs is missing or unreadable); a private key readable by group or others (the key store
refuses those too, later and less clearly).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from mesh.errors import FailedPrecondition

CODE = "data_dir_unusable"


def _unusable(path: Path, problem: str, problem_ja: str, hint: str = "") -> FailedPrecondition:
    return FailedPrecondition(f"data directory {path} is unusable: {problem}"
                              + (f"; {hint}" if hint else ""),
                              message_ja=f"データディレクトリ {path} を使用できません：{problem_ja}",
                              code=CODE, details={"path": str(path)})


def check_data_dir(path: Path, *, required: Sequence[str], secrets: Sequence[str] = (),
                   init_hint: str) -> None:
    """Raise ``FailedPrecondition`` (``data_dir_unusable``) unless ``path`` is usable.

    ``required``: files (relative) that an initialised directory holds; ``secrets``: glob
    patterns (relative) of private keys, which must be 0600; ``init_hint``: the command that
    initialises it, quoted in the message."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise _unusable(path, "it does not exist", "存在しません", init_hint) from None
    except OSError as exc:
        raise _unusable(path, f"it cannot be read ({exc.strerror})",
                        f"読み取れません（{exc.strerror}）") from None
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode):
        raise _unusable(path, "it is not a directory", "ディレクトリではありません")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise _unusable(path, f"user {os.geteuid()} cannot read and write it (mode {mode:o}, "
                        f"owner {st.st_uid})",
                        f"実行ユーザ {os.geteuid()} に読み書きの権限がありません（モード {mode:o}）",
                        "run the server as its owner or fix the permissions (chmod 700)")
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        raise _unusable(path, f"every user may write to it (mode {mode:o})",
                        f"すべてのユーザが書き込めます（モード {mode:o}）", f"run: chmod 700 {path}")
    for name in required:
        f = path / name
        if not f.exists():
            raise _unusable(path, f"it is not initialised ({name} is missing)",
                            f"初期化されていません（{name} がありません）", init_hint)
        if not os.access(f, os.R_OK):
            raise _unusable(path, f"{name} is not readable by user {os.geteuid()}",
                            f"{name} を読み取れません")
    for pattern in secrets:
        for key in sorted(path.glob(pattern)):
            key_mode = stat.S_IMODE(key.stat().st_mode)
            if key_mode & 0o077:
                raise _unusable(path, f"private key {key.relative_to(path)} is readable by group "
                                f"or others (mode {key_mode:o})",
                                f"秘密鍵 {key.relative_to(path)} が他のユーザから読み取れます",
                                f"run: chmod 600 {key}")

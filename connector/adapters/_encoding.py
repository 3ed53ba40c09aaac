"""Text encodings of Japanese open data: names, detection and locating undecodable bytes.

Shift_JIS is read and written as CP932 (Windows-31J), its superset that municipal files really
use (①, ㈱, NEC and IBM extensions); a strict Shift_JIS decoder rejects those characters.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from connector.adapters.base import SourceError

BOM = codecs.BOM_UTF8
SAMPLE_BYTES = 4 << 20
ALIASES = {"utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8-sig", "utf8-sig": "utf-8-sig",
           "cp932": "cp932", "ms932": "cp932", "windows-31j": "cp932", "shift_jis": "cp932",
           "shift-jis": "cp932", "sjis": "cp932", "auto": "auto"}


def normalize(name: str) -> str | None:
    """The canonical name (``utf-8``, ``utf-8-sig``, ``cp932``, ``auto``) or ``None`` if unsupported."""
    return ALIASES.get(name.strip().lower())


def mixed_error(path: Path, encoding: str, offset: int, line: int) -> SourceError:
    return SourceError(
        f"{path.name}: byte offset {offset} (line {line}) is not valid {encoding}; the file mixes "
        f"encodings or is not {encoding} (set 'encoding:' to utf-8 or cp932)",
        message_ja=f"{path.name}: {line} 行目（バイト位置 {offset}）が {encoding} として読めません。"
                   f"文字コードが混在しているか、文字コードの指定が違います",
        details={"offset": offset, "line": line, "encoding": encoding})


def detect(path: Path) -> str:
    """``utf-8-sig`` for a BOM, ``utf-8`` if the first 4 MiB decode as UTF-8, else ``cp932``.

    A sample that starts as UTF-8 (non-ASCII text decodes) and then breaks is reported as mixed
    encodings with the byte offset and line, rather than guessed.
    """
    with path.open("rb") as f:
        head = f.read(SAMPLE_BYTES)
        at_end = not f.read(1)
    if head.startswith(BOM):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=at_end)
        return "utf-8"
    except UnicodeDecodeError as exc:
        prefix = head[:exc.start]
        if not prefix.isascii():
            raise mixed_error(path, "utf-8", exc.start, prefix.count(b"\n") + 1) from None
        return "cp932"


def locate_decode_error(path: Path, encoding: str) -> SourceError | None:
    """Scan ``path`` line by line (streaming) for the first undecodable bytes; ``None`` if all decode.

    Splitting at LF is safe for UTF-8 and CP932: 0x0A is never part of a multi-byte character.
    """
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    offset = 0
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode(codec)
            except UnicodeDecodeError as exc:
                return mixed_error(path, encoding, offset + exc.start, number)
            offset += len(line)
    return None

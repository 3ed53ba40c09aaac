"""Streaming CSV reading for translation: every column as a string, CP932 transcoded on the fly."""

from __future__ import annotations

import codecs
import csv
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = ["ENCODINGS", "detect_encoding", "prefetch", "read_batches", "read_header"]

ENCODINGS = ("auto", "utf-8", "cp932")
_SNIFF = 1 << 16


def detect_encoding(path: Path) -> str:
    """``utf-8`` when the first 64 KiB decode as UTF-8 (BOM or not), else ``cp932`` (Shift_JIS)."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "cp932"
    return "utf-8"


def read_header(path: Path, encoding: str) -> list[str]:
    """The header row's column names (BOM removed)."""
    with open(path, encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="") as fh:
        return next(csv.reader(fh), [])


def read_batches(path: Path, *, encoding: str = "auto",
                 block_size: int = 4 << 20) -> tuple[list[str], str, Iterator[pa.RecordBatch]]:
    """``(column names, encoding used, batches)``; all columns are strings, empty cells ``""``."""
    if encoding == "auto":
        encoding = detect_encoding(path)
    names = read_header(path, encoding)
    read = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=block_size,
                             encoding="utf8" if encoding == "utf-8" else encoding)
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
    reader = pacsv.open_csv(path, read_options=read, convert_options=convert)
    return names, encoding, iter(reader)




def prefetch(batches: Iterator[pa.RecordBatch], depth: int = 4) -> Iterator[pa.RecordBatch]:
    """Read ``batches`` in a background thread, ``depth`` ahead, so reading overlaps translating."""
    slots: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(depth)
    stop = threading.Event()

    def fill() -> None:
        try:
            for b in batches:
                if stop.is_set():
                    return
                slots.put(b)
            slots.put(None)
        except BaseException as exc:  # handed to the consumer
            slots.put(exc)

    thread = threading.Thread(target=fill, name="csv-prefetch", daemon=True)
    thread.start()
    try:
        while (item := slots.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(0.01)

"""A batch entry's resident list from Arrow arrays, without a Python object per resident.

``encode_arrow`` builds the bytes ``mesh.ledger_verify.encode_subjects`` builds from Python
lists (tests hold them equal): the lengths and records counts with numpy, the subjects' bytes
straight from the Arrow data buffer. It takes the fast path only for ASCII subjects (resident
ids are: the consent store accepts nothing else), whose NFC form is themselves; anything else
goes through the reference encoder. It imports numpy and pyarrow, so ``chain.py`` imports it
only when it is handed Arrow arrays (the transfer path, where both are loaded anyway).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from mesh.ledger_verify import MAX_RECORDS, encode_subjects, list_sections


def _width(values: np.ndarray) -> int:
    """As ``mesh.ledger_verify``: 0 when all are equal, else the bytes that hold the largest."""
    largest = int(values.max())
    if int(values.min()) == largest:
        return 0
    return 1 if largest < 1 << 8 else 2 if largest < 1 << 16 else 4


def _packed(values: np.ndarray, width: int) -> bytes:
    return int(values[0]).to_bytes(4, "little") if width == 0 else \
        values.astype(f"<u{width}").tobytes()


def id_bytes(subjects: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of each id (nulls: their slot, usually 0)."""
    if subjects.type != pa.string():
        subjects = subjects.cast(pa.string())
    if not len(subjects):
        return np.zeros(0, np.int64)
    offsets = np.frombuffer(subjects.buffers()[1], np.int32, len(subjects) + 1,
                            subjects.offset * 4)
    return np.diff(offsets).astype(np.int64)


def as_lists(subjects: pa.Array, records: np.ndarray | pa.Array | Sequence[int]
             ) -> tuple[list[str], list[int]]:
    values = records.to_pylist() if isinstance(records, pa.Array) else (
        records.tolist() if isinstance(records, np.ndarray) else list(records))
    return subjects.to_pylist(), values


def encode_arrow(subjects: pa.Array, records: np.ndarray | pa.Array | Sequence[int]
                 ) -> tuple[bytes, int, list[str]]:
    """``(encoded list, records in all, problems)``: ``problems`` names what makes the pairs
    unfit for the ledger (empty: none), as ``chain._check`` does for lists."""
    if subjects.type != pa.string():
        subjects = subjects.cast(pa.string())
    counts = np.asarray(records.to_numpy(zero_copy_only=False) if isinstance(records, pa.Array)
                        else records, np.int64)
    n = len(subjects)
    problems = []
    if len(counts) != n:
        problems.append("as many records counts as subjects")
    if n and (counts.min() <= 0 or counts.max() > MAX_RECORDS):
        problems.append("records (positive integers)")
    if problems:
        return b"", 0, problems
    if not n:
        return encode_subjects([], []), 0, []
    bufs = subjects.buffers()
    offsets = np.frombuffer(bufs[1], np.int32, n + 1, subjects.offset * 4)
    lengths = np.diff(offsets)
    if subjects.null_count or lengths.min() <= 0:
        return b"", int(counts.sum()), ["subject"]
    data = np.frombuffer(bufs[2], np.uint8)[int(offsets[0]):int(offsets[-1])]
    if data.max() >= 0x80:                  # not ASCII: NFC through the reference encoder
        names, values = as_lists(subjects, counts)
        return encode_subjects(names, values), int(counts.sum()), []
    length_width, records_width = _width(lengths), _width(counts)
    blob = b"".join((bytes((length_width, records_width)), n.to_bytes(4, "little"),
                     _packed(lengths, length_width), _packed(counts, records_width), data))
    return blob, int(counts.sum()), []


def decode_arrow(blob: bytes) -> tuple[pa.Array, np.ndarray]:
    """``mesh.ledger_verify.decode_subjects`` into an Arrow string array and numpy counts, the
    subjects' bytes used as they are stored (one buffer, no Python string per resident).
    ``ValueError`` when the list is malformed or its bytes are not UTF-8, as the reference."""
    lengths, counts, at = list_sections(blob, _unpacked_np, lambda a: int(a.sum()))
    n = len(lengths)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 1 << 31:
        raise ValueError("the resident list is too long")
    subjects = pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)),
                                           pa.py_buffer(memoryview(blob)[at:]))
    try:
        subjects.validate(full=True)        # UTF-8, as .decode() would insist
    except pa.ArrowInvalid as exc:
        raise ValueError(f"a resident id is not UTF-8: {exc}") from None
    return subjects, counts


def _unpacked_np(blob: bytes, at: int, n: int, width: int) -> tuple[np.ndarray, int]:
    """As ``mesh.ledger_verify``'s reader, into a numpy array."""
    if width not in (0, 1, 2, 4):
        raise ValueError("not an encoded resident list")
    size = 4 if width == 0 else n * width
    if len(blob) < at + size:
        raise ValueError("the resident list is cut short")
    if width == 0:
        return np.full(n, int.from_bytes(blob[at:at + 4], "little"), np.int64), at + 4
    return np.frombuffer(blob, f"<u{width}", n, at).astype(np.int64), at + size

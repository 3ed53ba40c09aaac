"""Strict JSON for input from outside: UTF-8, finite numbers, bounded nesting.

``json.loads`` takes ``NaN`` and ``Infinity``, turns ``1e309`` into ``inf``, and raises
``RecursionError`` on deep nesting: none of that may reach code that trusts the value.
``loads_strict`` refuses all three with ``StrictJsonError`` (a ``ValueError``), whose message
says what was wrong. Used by the HTTP reader (``mesh/http_input.py``) and the ledger export
reader (``mesh/ledger_verify.py``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32          # nesting levels; our documents use fewer than 6


class StrictJsonError(ValueError):
    """Not strict JSON. ``reason`` is English, ``reason_ja`` Japanese."""

    def __init__(self, reason: str, reason_ja: str) -> None:
        super().__init__(reason)
        self.reason, self.reason_ja = reason, reason_ja


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJsonError(f"the number {text[:40]} is out of range", "数値が範囲外です")
    return value


def _no_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON number", f"{name} は使えません")


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")


def _deeper_than(raw: bytes, max_depth: int) -> bool:
    """Whether valid JSON ``raw`` nests arrays and objects deeper than ``max_depth``: each
    pass removes the innermost level from the brackets alone (all C, where a walk over the
    parsed value would cost several times the parse). Brackets inside strings only count when
    the quick bound is over: then the strings are cut first (linear on valid JSON)."""
    def deeper(brackets: bytes) -> bool:
        for _ in range(max_depth):
            if not brackets:
                return False
            brackets = _INNERMOST.sub(b"", brackets)
        return bool(brackets)

    return (deeper(raw.translate(None, _NOT_BRACKETS))
            and deeper(_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)))


def loads_strict(data: bytes | str, *, max_depth: int | None = MAX_DEPTH) -> Any:
    """``data`` parsed as strict JSON, or ``StrictJsonError``. ``max_depth=None`` skips
    counting levels (for documents whose shape the caller checks itself); the parser's own
    recursion limit still applies."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrictJsonError(f"not UTF-8 at byte {exc.start}", "UTF-8 ではありません") from None
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise StrictJsonError("nested deeper than the parser's limit",
                              "入れ子が深すぎます") from None
    except StrictJsonError:
        raise
    except ValueError as exc:      # JSONDecodeError, and ints over Python's digit limit
        raise StrictJsonError(str(exc)[:200], "構文が正しくありません") from None
    # counted on valid JSON only: every string is closed, so the scan is linear
    if max_depth is not None and _deeper_than(raw, max_depth):
        raise StrictJsonError(f"nested deeper than {max_depth} levels",
                              f"入れ子が{max_depth}段を超えています")
    return value

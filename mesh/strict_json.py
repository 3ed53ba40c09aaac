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


def _depth_ok(value: Any, max_depth: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def loads_strict(data: bytes | str, *, max_depth: int | None = MAX_DEPTH) -> Any:
    """``data`` parsed as strict JSON, or ``StrictJsonError``. ``max_depth=None`` skips the
    walk that counts levels (for large documents whose shape the caller checks itself); the
    parser's own recursion limit still applies."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJsonError(f"not UTF-8 at byte {exc.start}", "UTF-8 ではありません") from None
    try:
        value = json.loads(data, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        deep = True
    except StrictJsonError:
        raise
    except ValueError as exc:      # JSONDecodeError, and ints over Python's digit limit
        raise StrictJsonError(str(exc)[:200], "構文が正しくありません") from None
    else:
        deep = max_depth is not None and not _depth_ok(value, max_depth)
    if deep:
        limit = max_depth or "the parser's"
        raise StrictJsonError(f"nested deeper than {limit} levels",
                              f"入れ子が深すぎます（上限 {limit} 段）")
    return value

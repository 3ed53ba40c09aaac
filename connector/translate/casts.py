"""Vectorised casts of string columns, each reporting which rows failed and why.

Numbers and booleans use pyarrow.compute kernels only (NFKC for full-width digits, a regex check,
then a cast of the rows that passed). Dates, datetimes and times are parsed in Python once per
distinct value (dictionary-encode, map the dictionary, take).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connector.translate.wareki import DateError, parse_dates

__all__ = ["BOOL_FALSE", "BOOL_TRUE", "CASTS", "Converted", "cast_strings", "map_unique"]

Reason = Callable[[str], tuple[str, str]]

BOOL_TRUE = ("true", "1", "はい", "有", "有り", "あり", "yes", "y", "○", "〇")
BOOL_FALSE = ("false", "0", "いいえ", "無", "無し", "なし", "no", "n", "×")

#: cast name -> (arrow type, Table Schema type)
CASTS: dict[str, tuple[pa.DataType, str]] = {
    "string": (pa.string(), "string"),
    "int": (pa.int64(), "integer"),
    "float": (pa.float64(), "number"),
    "bool": (pa.bool_(), "boolean"),
    "date": (pa.date32(), "date"),
    "datetime": (pa.timestamp("s"), "datetime"),
    "time": (pa.time32("s"), "time"),
    # a time of day kept as text "hh:mm" (or "hh:mm:ss"), so a closing time 24:00 survives:
    # Arrow's time types end at 23:59:59
    "hhmm": (pa.string(), "time"),
}

_INT = r"^[+-]?[0-9]{1,18}$"
_FLOAT = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
_TIME = re.compile(r"[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?")
_BOOL_KEYS = pa.array(BOOL_TRUE + BOOL_FALSE)
_BOOL_VALUES = pa.array([True] * len(BOOL_TRUE) + [False] * len(BOOL_FALSE))


@dataclass(frozen=True)
class Converted:
    """A cast's output, the rows it could not convert (``None`` when all converted) and why."""

    values: pa.Array
    bad: pa.Array | None = None
    reason: Reason | None = None


def nfkc(values: pa.Array) -> pa.Array:
    """NFKC-normalise (full-width ``１２３`` → ``123``) unless the column is already ASCII."""
    if pc.all(pc.string_is_ascii(values)).as_py() is not False:
        return values
    return pc.utf8_normalize(values, form="NFKC")


def _by_regex(values: pa.Array, pattern: str, to: pa.DataType, reason: Reason) -> Converted:
    try:  # fast path: Arrow's own parser, when every value is a plain number
        out = pc.cast(values, to)
        if not pa.types.is_floating(to) or pc.all(pc.fill_null(pc.is_finite(out), True)).as_py():
            return Converted(out)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    text = pc.replace_substring(nfkc(values), ",", "")
    ok = pc.match_substring_regex(text, pattern)
    bad = pc.invert(pc.fill_null(ok, True))
    if pc.any(bad).as_py():
        text = pc.if_else(bad, pa.scalar(None, pa.string()), text)
        return Converted(pc.cast(text, to), bad, reason)
    return Converted(pc.cast(text, to))


def _bool(values: pa.Array) -> Converted:
    index = pc.index_in(pc.utf8_lower(nfkc(values)), value_set=_BOOL_KEYS)
    out = _BOOL_VALUES.take(index)
    bad = pc.and_(pc.is_null(index), pc.is_valid(values))
    if pc.any(bad).as_py():
        return Converted(out, bad, lambda v: (
            f"{v!r} is not a boolean (use one of {', '.join(BOOL_TRUE + BOOL_FALSE)})",
            f"「{v}」は真偽値として読めません（{'、'.join(BOOL_TRUE + BOOL_FALSE)} のいずれか）"))
    return Converted(out)


def map_unique(values: pa.Array, parse: Callable[[str], Any], to: pa.DataType) -> Converted:
    """Apply ``parse`` once per distinct value; it raises :class:`DateError` for a bad value."""
    encoded = pc.dictionary_encode(values)
    out: list[Any] = []
    errors: dict[str, DateError] = {}
    bad_codes: list[int] = []
    for code, value in enumerate(encoded.dictionary.to_pylist()):
        try:
            out.append(parse(value))
        except DateError as exc:
            out.append(None)
            errors[value] = exc
            bad_codes.append(code)
    result = pa.array(out, to).take(encoded.indices)
    if not bad_codes:
        return Converted(result)
    bad = pc.fill_null(pc.is_in(encoded.indices, value_set=pa.array(bad_codes, encoded.indices.type)), False)
    return Converted(result, bad, lambda v: (errors[v].message, errors[v].message_ja))


def _datetime(value: str) -> datetime:
    text = unicodedata.normalize("NFKC", value).strip().replace("/", "-")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise DateError(f"{value!r} is not a date and time (e.g. 2023-04-01 09:30:00)",
                        f"「{value}」は日時として読めません（例: 2023-04-01 09:30:00）") from None


def _time(value: str) -> time:
    text = unicodedata.normalize("NFKC", value).strip().replace("時", ":").replace("分", ":").rstrip(":秒")
    try:
        parts = [int(p) for p in text.split(":")] if _TIME.fullmatch(text) else []
        return time(*parts) if parts else time.fromisoformat(text)
    except ValueError:
        raise DateError(f"{value!r} is not a time of day (e.g. 09:30)",
                        f"「{value}」は時刻として読めません（例: 09:30）") from None


def _hhmm(value: str) -> str:
    """``9:30``/``09:30:15``/``18時00分``/``24:00`` → ``09:30``/``09:30:15``/``18:00``/``24:00``."""
    if unicodedata.normalize("NFKC", value).strip() in ("24:00", "24:00:00", "24時", "24時00分"):
        return "24:00"
    t = _time(value)
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


def cast_strings(values: pa.Array, cast: str) -> Converted:
    """Convert a string column to ``cast`` (a key of :data:`CASTS`); nulls stay null."""
    to = CASTS[cast][0]
    if cast == "string":
        return Converted(values)
    if cast == "int":
        return _by_regex(values, _INT, to, lambda v: (
            f"{v!r} is not an integer", f"「{v}」は整数として読めません"))
    if cast == "float":
        return _by_regex(values, _FLOAT, to, lambda v: (
            f"{v!r} is not a number", f"「{v}」は数値として読めません"))
    if cast == "bool":
        return _bool(values)
    if cast == "date":
        out, bad, errors = parse_dates(values, wareki=False)
        if not errors:
            return Converted(out)
        return Converted(out, bad, lambda v: (errors[v].message, errors[v].message_ja))
    if cast == "hhmm":
        return map_unique(values, _hhmm, to)
    return map_unique(values, _datetime if cast == "datetime" else _time, to)

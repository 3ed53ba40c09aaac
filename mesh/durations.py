"""Human durations for flags and settings: ``90s``, ``15m``, ``24h``, ``30d``, ``1h30m``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ERROR = "invalid duration {!r}: use e.g. 30s, 15m, 24h, 30d or 1h30m"


def _seconds(text: object, seconds: float) -> timedelta:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(_ERROR.format(text))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too long") from None


def parse_duration(text: str | float | int | timedelta) -> timedelta:
    """Parse ``text``; a bare number is seconds. Raises ``ValueError`` with the accepted forms.

    Durations are never negative. A bare number uses the same plain decimal form as the parts
    of ``1h30m`` (no sign, exponent, ``_``, ``nan`` or ``inf``).
    """
    if isinstance(text, timedelta):
        return text
    if isinstance(text, (int, float)):
        return _seconds(text, text)
    s = text.strip().lower()
    if _NUMBER.fullmatch(s):
        return _seconds(text, float(s))
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(_ERROR.format(text))
    return _seconds(text, total)


def format_duration(td: timedelta) -> str:
    """The shortest exact form ``parse_duration`` reads back: ``1d``, ``90m``, ``1.5s``."""
    micros = td // timedelta(microseconds=1)
    sign, micros = ("-", -micros) if micros < 0 else ("", micros)
    secs, frac = divmod(micros, 1_000_000)
    if frac:
        return f"{sign}{secs}.{frac:06d}".rstrip("0") + "s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs and secs % size == 0:
            return f"{sign}{secs // size}{unit}"
    return f"{sign}{secs}s"

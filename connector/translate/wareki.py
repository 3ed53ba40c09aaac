"""和暦 (Japanese era) and 西暦 date parsing, vectorised over the unique values of a column.

Accepted forms (after NFKC, so full-width digits and letters work): ``令和5年4月1日``, ``令和元年5月1日``,
``R5.4.1``, ``H31/4/30``, ``令5.4.1``, ``昭和六十四年一月七日`` (kanji numerals), and with
``gregorian=True`` also ``2023-04-01``, ``2023/4/1``, ``2023.4.1``, ``2023年4月1日`` and ``20230401``.
A date must exist (no 2月30日), an era year must be ≥ 1 (no 令和0年) and the date must fall inside
its era (平成 ended on 2019-04-30, so 平成32年 and 平成31年5月1日 are errors).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ERAS", "DateError", "Era", "clear_cache", "parse_date", "parse_dates"]


@dataclass(frozen=True)
class Era:
    name: str
    letter: str
    start: date
    end: date | None  # last day, inclusive; None for the current era


ERAS: tuple[Era, ...] = (
    Era("明治", "M", date(1868, 1, 25), date(1912, 7, 29)),
    Era("大正", "T", date(1912, 7, 30), date(1926, 12, 24)),
    Era("昭和", "S", date(1926, 12, 25), date(1989, 1, 7)),
    Era("平成", "H", date(1989, 1, 8), date(2019, 4, 30)),
    Era("令和", "R", date(2019, 5, 1), None),
)
_BY_KEY = {k: e for e in ERAS for k in (e.name, e.letter, e.name[0])}

_NUM = r"\d{1,2}|[〇一二三四五六七八九十]{1,3}"
_SEP_Y = r"\s*(?:年|[./\-])\s*"
_SEP_M = r"\s*(?:月|[./\-])\s*"
_WAREKI = re.compile(
    rf"(?P<era>明治|大正|昭和|平成|令和|[MTSHR明大昭平令])\s*(?P<y>元|{_NUM}){_SEP_Y}(?P<m>{_NUM}){_SEP_M}"
    rf"(?P<d>{_NUM})\s*日?", re.IGNORECASE)
_GREGORIAN = re.compile(rf"(?P<y>\d{{4}}){_SEP_Y}(?P<m>\d{{1,2}}){_SEP_M}(?P<d>\d{{1,2}})\s*日?")
_COMPACT = re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})")
_KANJI_DIGITS = {c: i for i, c in enumerate("〇一二三四五六七八九")}


class DateError(ValueError):
    """A value that is not a valid date; ``message_ja`` is the Japanese reason."""

    def __init__(self, message: str, message_ja: str) -> None:
        super().__init__(message)
        self.message = message
        self.message_ja = message_ja


def _number(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text == "元":
        return 1
    if "十" in text:  # 十, 十二, 二十, 三十一
        tens, _, ones = text.partition("十")
        return (_KANJI_DIGITS[tens] if tens else 1) * 10 + (_KANJI_DIGITS[ones] if ones else 0)
    value = 0
    for ch in text:
        value = value * 10 + _KANJI_DIGITS[ch]
    return value


def _make_date(value: str, year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise DateError(f"{value!r} is not a real date ({year}-{month:02d}-{day:02d} does not exist)",
                        f"「{value}」は存在しない日付です（{year}年{month}月{day}日はありません）") from None


def _parse_wareki(value: str, m: re.Match[str]) -> date:
    era = _BY_KEY[m["era"].upper() if len(m["era"]) == 1 and m["era"].isascii() else m["era"]]
    era_year = _number(m["y"])
    if era_year < 1:
        raise DateError(f"{value!r}: {era.name} year {era_year} does not exist (the first year is 元年)",
                        f"「{value}」: {era.name}{era_year}年はありません（最初の年は元年です）")
    result = _make_date(value, era.start.year + era_year - 1, _number(m["m"]), _number(m["d"]))
    if result < era.start or (era.end is not None and result > era.end):
        span = f"{era.start.isoformat()}…{era.end.isoformat() if era.end else ''}"
        raise DateError(f"{value!r} is outside the {era.name} era ({span}); it would be {result.isoformat()}",
                        f"「{value}」は{era.name}の期間（{span}）外の日付です（西暦{result.isoformat()}に当たります）")
    return result


@lru_cache(maxsize=65536)
def parse_date(value: str, *, wareki: bool = True, gregorian: bool = True) -> date:
    """Parse one date string; raise :class:`DateError` with English and Japanese reasons."""
    text = unicodedata.normalize("NFKC", value).strip()
    if wareki and (m := _WAREKI.fullmatch(text)):
        return _parse_wareki(value, m)
    if gregorian and (m := _GREGORIAN.fullmatch(text) or _COMPACT.fullmatch(text)):
        return _make_date(value, int(m["y"]), int(m["m"]), int(m["d"]))
    kinds_en = " or ".join(k for k, on in (("a 和暦 date", wareki), ("a 西暦 date", gregorian)) if on)
    kinds_ja = "・".join(k for k, on in (("和暦", wareki), ("西暦", gregorian)) if on)
    raise DateError(f"{value!r} is not {kinds_en} (e.g. 令和5年4月1日, R5.4.1, 2023-04-01)",
                    f"「{value}」は{kinds_ja}の日付として読めません（例: 令和5年4月1日、R5.4.1、2023-04-01）")


_EPOCH = date(1970, 1, 1).toordinal()
_CACHE_LIMIT = 500_000
_day_cache: dict[tuple[str, bool, bool], int | DateError] = {}


def _days(value: str, wareki: bool, gregorian: bool) -> int | DateError:
    """Days since 1970-01-01, or the error; remembered across batches."""
    key = (value, wareki, gregorian)
    found = _day_cache.get(key)
    if found is None:
        if len(_day_cache) >= _CACHE_LIMIT:
            _day_cache.clear()
        try:
            found = parse_date(value, wareki=wareki, gregorian=gregorian).toordinal() - _EPOCH
        except DateError as exc:
            found = exc
        _day_cache[key] = found
    return found


def clear_cache() -> None:
    """Forget parsed values (benchmarks use this to measure a cold start)."""
    _day_cache.clear()
    parse_date.cache_clear()


def parse_dates(values: pa.Array, *, wareki: bool = True,
                gregorian: bool = True) -> tuple[pa.Array, pa.Array, dict[str, DateError]]:
    """Parse a string column: ``(date32 array, bool mask of unparseable rows, errors by value)``.

    Each distinct value is parsed once in Python (dictionary-encode, map the dictionary, take),
    and parsed values are remembered across batches. Nulls stay null and are not errors.
    """
    encoded = pc.dictionary_encode(values)
    days: list[int | None] = []
    errors: dict[str, DateError] = {}
    bad_codes: list[int] = []
    for code, value in enumerate(encoded.dictionary.to_pylist()):
        found = _days(value, wareki, gregorian)
        if isinstance(found, int):
            days.append(found)
        else:
            days.append(None)
            errors[value] = found
            bad_codes.append(code)
    out = pa.array(days, pa.int32()).cast(pa.date32()).take(encoded.indices)
    if not bad_codes:
        return out, pa.repeat(pa.scalar(False), len(values)), errors
    bad = pc.is_in(encoded.indices, value_set=pa.array(bad_codes, encoded.indices.type))
    return out, pc.fill_null(bad, False), errors

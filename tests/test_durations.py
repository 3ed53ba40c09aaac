"""Tests for mesh/durations.py: parsing and formatting human durations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mesh.durations import format_duration, parse_duration


@pytest.mark.parametrize(("text", "expected"), [
    ("30s", timedelta(seconds=30)),
    ("15m", timedelta(minutes=15)),
    ("24h", timedelta(hours=24)),
    ("30d", timedelta(days=30)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ("1m30s", timedelta(seconds=90)),
    ("1d1d", timedelta(days=2)),
    ("500ms", timedelta(milliseconds=500)),
    ("1s500ms", timedelta(milliseconds=1500)),
    ("1.5h", timedelta(minutes=90)),
    ("0.25s", timedelta(milliseconds=250)),
    ("90", timedelta(seconds=90)),
    ("0.5", timedelta(milliseconds=500)),
    ("0", timedelta(0)),
    ("0s", timedelta(0)),
    ("  15m\n", timedelta(minutes=15)),
    ("15M", timedelta(minutes=15)),
    ("1H30M", timedelta(hours=1, minutes=30)),
    ("397d", timedelta(days=397)),
])
def test_parse_valid(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_ms_is_milliseconds_not_minutes() -> None:
    assert parse_duration("5ms") == timedelta(milliseconds=5)
    assert parse_duration("5m") == timedelta(minutes=5)


def test_timedelta_passthrough() -> None:
    td = timedelta(hours=3, microseconds=7)
    assert parse_duration(td) is td


@pytest.mark.parametrize(("value", "expected"), [
    (90, timedelta(seconds=90)),
    (0, timedelta(0)),
    (0.5, timedelta(milliseconds=500)),
    (86400.0, timedelta(days=1)),
])
def test_numbers_are_seconds(value: float, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("text", [
    "", "   ", "abc", "10x", "s", "h1", "1h 30m", "1 h", "-5s", "-5", "+5", "-1h30m", "1h-30m",
    ".5s", "5.s", "1..5s", "1.5.5s", "nan", "inf", "-inf", "infinity", "1e3", "1e400", "1_000",
    "0x10", "30sec", "30 s", "1h30", "h", "ms", "1,5s", "1y", "3w", "30s!", "30s30",
])
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError) as ei:
        parse_duration(text)
    msg = str(ei.value)
    assert repr(text) in msg
    assert "30s, 15m, 24h, 30d or 1h30m" in msg


@pytest.mark.parametrize("text", ["99999999999d", "1000000000d", "99999999999999999999"])
def test_parse_too_long_is_a_value_error(text: str) -> None:
    # timedelta overflows here; the caller must still see ValueError, not OverflowError
    with pytest.raises(ValueError, match="too long"):
        parse_duration(text)


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), float("-inf")])
def test_parse_invalid_numbers(value: float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_parse_too_large_number_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_duration(1e20)


@pytest.mark.parametrize(("td", "text"), [
    (timedelta(0), "0s"),
    (timedelta(seconds=30), "30s"),
    (timedelta(seconds=90), "90s"),
    (timedelta(minutes=15), "15m"),
    (timedelta(minutes=90), "90m"),
    (timedelta(hours=24), "1d"),
    (timedelta(hours=25), "25h"),
    (timedelta(days=30), "30d"),
    (timedelta(milliseconds=500), "0.5s"),
    (timedelta(milliseconds=1500), "1.5s"),
    (timedelta(seconds=60, milliseconds=500), "60.5s"),
    (timedelta(microseconds=1), "0.000001s"),
    (timedelta(seconds=1234567, milliseconds=500), "1234567.5s"),
])
def test_format(td: timedelta, text: str) -> None:
    assert format_duration(td) == text


def test_format_negative_keeps_sign() -> None:
    assert format_duration(timedelta(minutes=-1)) == "-1m"
    assert format_duration(timedelta(milliseconds=-1500)) == "-1.5s"


@pytest.mark.parametrize("td", [
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(milliseconds=1),
    timedelta(milliseconds=100),
    timedelta(seconds=1),
    timedelta(seconds=59),
    timedelta(seconds=61),
    timedelta(seconds=60, milliseconds=500),
    timedelta(seconds=86400, microseconds=1),
    timedelta(minutes=1),
    timedelta(hours=1, minutes=30),
    timedelta(hours=1, seconds=1),
    timedelta(days=1),
    timedelta(days=397),
    timedelta(days=3650, microseconds=999999),
    timedelta(days=12345, seconds=6789, microseconds=123456),
])
def test_format_round_trips(td: timedelta) -> None:
    text = format_duration(td)
    assert parse_duration(text) == td, text


@pytest.mark.parametrize("text", ["30s", "15m", "24h", "30d", "1h30m", "90", "0.5", "1d2h3m4s",
                                  "250ms", "1.5h"])
def test_parse_format_parse_is_stable(text: str) -> None:
    td = parse_duration(text)
    assert parse_duration(format_duration(td)) == td


def test_format_round_trip_sweep() -> None:
    # every whole second of the first two days, stepping with a prime, plus a sub-second part
    for secs in range(0, 2 * 86400, 173):
        for micros in (0, 1, 250_000, 999_999):
            td = timedelta(seconds=secs, microseconds=micros)
            assert parse_duration(format_duration(td)) == td, td

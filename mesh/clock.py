"""UTC time helpers: one text form for stored timestamps, so they compare as strings."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def timestamp(dt: datetime | None = None) -> Timestamp:
    """A protobuf ``Timestamp`` of ``dt`` (default: now)."""
    ts = Timestamp()
    ts.FromDatetime(dt or utcnow())
    return ts

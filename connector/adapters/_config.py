"""Config validation shared by the built-in adapters: every error names the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from mesh.errors import InvalidRequest

_MISSING = object()


def bad_key(kind: str, key: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{kind} adapter: config key '{key}' {problem}",
                          message_ja=f"{kind} アダプタの設定項目 '{key}' が不正です: {problem}",
                          details={"adapter": kind, "key": key})


def get_str(config: dict[str, Any], key: str, kind: str, default: Any = _MISSING) -> str:
    """``config[key]`` as a non-empty string; missing → ``default`` or an error naming ``key``."""
    value = config.get(key, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise InvalidRequest(f"{kind} adapter: config key '{key}' is required",
                                 message_ja=f"{kind} アダプタの設定項目 '{key}' は必須です",
                                 details={"adapter": kind, "key": key})
        return default
    if not isinstance(value, str) or not value:
        raise bad_key(kind, key, "must be a non-empty string")
    return value


def get_choice(config: dict[str, Any], key: str, kind: str, choices: tuple[str, ...], default: str) -> str:
    value = get_str(config, key, kind, default)
    if value not in choices:
        raise bad_key(kind, key, f"must be one of {', '.join(choices)} (got {value!r})")
    return value


def get_int(config: dict[str, Any], key: str, kind: str, default: int, *, minimum: int = 0) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise bad_key(kind, key, f"must be an integer ≥ {minimum} (got {value!r})")
    return value


def get_float(config: dict[str, Any], key: str, kind: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise bad_key(kind, key, f"must be a positive number (got {value!r})")
    return float(value)


def get_mapping(config: dict[str, Any], key: str, kind: str) -> dict[str, str]:
    value = config.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise bad_key(kind, key, "must be a mapping of strings to strings")
    return dict(value)


def get_types(config: dict[str, Any], kind: str) -> dict[str, pa.DataType]:
    """``types: {column: arrow type name}`` (``int64``, ``float64``, ``string``, ``bool``, ``date32``…)."""
    types = {}
    for column, name in get_mapping(config, "types", kind).items():
        try:
            types[column] = pa.type_for_alias(name)
        except (ValueError, KeyError):
            raise bad_key(kind, "types", f"column {column!r}: unknown Arrow type {name!r}") from None
    return types


def get_path(config: dict[str, Any], key: str, kind: str, base_dir: Path) -> Path:
    """A file path; relative paths are taken relative to ``base_dir`` (the dataset's folder)."""
    path = Path(get_str(config, key, kind)).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def check_batch_rows(batch_rows: int) -> int:
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise InvalidRequest(f"batch_rows must be a positive integer (got {batch_rows!r})")
    return batch_rows

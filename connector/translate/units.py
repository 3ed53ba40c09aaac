"""Unit conversion table: each unit's factor to its dimension's base unit."""

from __future__ import annotations

__all__ = ["UNITS", "conversion_factor"]

#: unit name -> (dimension, factor to the base unit: m2, m, m3, kg)
UNITS: dict[str, tuple[str, float]] = {
    "m2": ("area", 1.0), "㎡": ("area", 1.0), "平方メートル": ("area", 1.0),
    "tsubo": ("area", 400 / 121), "坪": ("area", 400 / 121),  # 1坪 = 400/121 m2 (尺貫法)
    "a": ("area", 100.0), "ha": ("area", 10_000.0), "km2": ("area", 1_000_000.0),
    "m": ("length", 1.0), "km": ("length", 1000.0), "cm": ("length", 0.01), "mm": ("length", 0.001),
    "m3": ("volume", 1.0), "千m3": ("volume", 1000.0), "l": ("volume", 0.001), "kl": ("volume", 1.0),
    "ml": ("volume", 1e-6),
    "g": ("mass", 0.001), "kg": ("mass", 1.0), "t": ("mass", 1000.0),
}


def conversion_factor(source: str, target: str) -> float:
    """Multiply a value in ``source`` units by this to get ``target`` units; ``KeyError``/``ValueError``."""
    dim_from, f_from = UNITS[source]
    dim_to, f_to = UNITS[target]
    if dim_from != dim_to:
        raise ValueError(f"cannot convert {dim_from} ({source}) to {dim_to} ({target})")
    return f_from / f_to

"""Finding adapters: the ``areamesh.adapters`` entry-point group, built-ins included.

A package that declares ``[project.entry-points."areamesh.adapters"] name = "pkg.mod:Factory"``
adds adapter ``name``; a dataset selects it with ``adapter: name`` in its source or sink config.
A plugin that fails to import is logged and reported when it is asked for, so one broken
plugin does not disable the others.
"""

from __future__ import annotations

import functools
import logging
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from connector.adapters.base import Sink, Source
from mesh.errors import InvalidRequest

log = logging.getLogger("areamesh.connector.adapters")
GROUP = "areamesh.adapters"


@functools.cache
def _discover() -> tuple[dict[str, type], dict[str, str]]:
    loaded: dict[str, type] = {}
    broken: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in loaded:
            log.warning("adapter %r is declared twice; keeping %s", ep.name, loaded[ep.name])
            continue
        try:
            loaded[ep.name] = ep.load()
        except Exception as exc:
            broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
            log.error("adapter %r (%s) cannot be loaded: %s", ep.name, ep.value, exc)
    return loaded, broken


def load_adapters() -> dict[str, type]:
    """All adapter factories by name (cached for the life of the process)."""
    return dict(_discover()[0])


def get_adapter(config: dict[str, Any]) -> type:
    """The factory ``config['adapter']`` names, or an ``InvalidRequest`` listing the known ones."""
    if not isinstance(config, dict):
        raise InvalidRequest("adapter config must be a mapping", message_ja="アダプタ設定は辞書で指定します")
    adapters, broken = _discover()
    known = ", ".join(sorted(adapters)) or "(none)"
    name = config.get("adapter")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"config key 'adapter' is required; known adapters: {known}",
                             message_ja=f"設定項目 'adapter' は必須です（使えるアダプタ: {known}）",
                             details={"key": "adapter", "known": sorted(adapters)})
    if name in broken:
        raise InvalidRequest(f"adapter {name!r} is installed but cannot be loaded: {broken[name]}",
                             message_ja=f"アダプタ {name!r} を読み込めません")
    if name not in adapters:
        raise InvalidRequest(f"unknown adapter {name!r}; known adapters: {known}",
                             message_ja=f"アダプタ {name!r} はありません（使えるアダプタ: {known}）",
                             details={"key": "adapter", "known": sorted(adapters)})
    return adapters[name]


def open_source(config: dict[str, Any], base_dir: Path) -> Source:
    """A source for ``config`` (validated, not yet connected)."""
    return get_adapter(config).source(config, base_dir=Path(base_dir))


def open_sink(config: dict[str, Any], base_dir: Path) -> Sink:
    """A sink for ``config`` (validated, not yet connected)."""
    return get_adapter(config).sink(config, base_dir=Path(base_dir))

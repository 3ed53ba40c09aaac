"""The developer portal at ``/developers/``."""

from __future__ import annotations

from aiohttp import web


def add_developer_pages(app: web.Application) -> None:
    """Not built yet."""

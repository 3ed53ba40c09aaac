"""The catalog portal: search at ``/``, dataset, organisation and theme pages."""

from __future__ import annotations

from aiohttp import web

from registry.catalog.datasets import CatalogService
from registry.store import RegistryStore


def add_catalog_pages(app: web.Application, catalog: CatalogService, store: RegistryStore) -> None:
    """Not built yet."""

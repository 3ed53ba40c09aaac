"""All of the registry's pages, by area. Each area is a sub-package with its own handlers,
templates (``templates/<area>/``) and messages (``messages/<area>.yaml``)."""

from __future__ import annotations

from aiohttp import web

from registry.catalog.datasets import CatalogService
from registry.config import RegistryConfig
from registry.operators.admin import AdminService
from registry.store import RegistryStore
from registry.web.catalog import add_catalog_pages
from registry.web.console import add_console_pages
from registry.web.console.billing import add_billing_pages
from registry.web.console.datamap import add_datamap_pages
from registry.web.console.federation import add_federation_pages
from registry.web.console.kpi import add_kpi_pages
from registry.web.console.metering import add_metering_pages
from registry.web.developers import add_developer_pages


def add_registry_pages(app: web.Application, admin: AdminService, catalog: CatalogService,
                       store: RegistryStore, config: RegistryConfig) -> None:
    add_catalog_pages(app, catalog, store)
    add_developer_pages(app)
    add_console_pages(app, admin, store, config)
    add_metering_pages(app)
    add_billing_pages(app)
    add_datamap_pages(app)
    add_kpi_pages(app)
    add_federation_pages(app)

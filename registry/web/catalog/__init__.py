"""The catalog portal: search at ``/``, dataset, organisation and theme pages. Handlers are
thin: they ask CatalogService and RegistryStore, as the JSON API does, then render."""

from __future__ import annotations

from aiohttp import web

from registry.catalog.datasets import CatalogService
from registry.store import RegistryStore
from registry.web.catalog.common import PAGES, CatalogPages
from registry.web.catalog.dataset import dataset_dcat, dataset_page
from registry.web.catalog.orgs import organization_page, organizations_page, theme_page, themes_page
from registry.web.catalog.search import search_page


def add_catalog_pages(app: web.Application, catalog: CatalogService, store: RegistryStore) -> None:
    app[PAGES] = CatalogPages(catalog, store)
    app.router.add_get("/", search_page)
    app.router.add_get("/datasets/{id}", dataset_page)
    app.router.add_get("/datasets/{id}/dcat.jsonld", dataset_dcat)
    app.router.add_get("/organizations/", organizations_page)
    app.router.add_get("/organizations/{id}", organization_page)
    app.router.add_get("/themes/", themes_page)
    app.router.add_get("/themes/{id}", theme_page)

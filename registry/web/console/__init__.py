"""The operating organisation's console at ``/admin/``."""

from __future__ import annotations

from aiohttp import web

from mesh.http_auth import OPERATOR_READ
from mesh.web.render import page, render
from registry.operators.admin import AdminService
from registry.store import RegistryStore


@page(OPERATOR_READ)
async def console_home(request: web.Request) -> web.Response:
    return await render(request, "console/home.html")


def add_console_pages(app: web.Application, admin: AdminService, store: RegistryStore) -> None:
    app.router.add_get("/admin/", console_home)

"""The console's transfers: running ones with live progress, history, unfinished fetches and
what resuming them does, and fetching an agreed dataset into ``DATA_DIR/downloads/`` (the
consumer side: the same ``Fetcher`` as ``areamesh connector fetch``, run by the app)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from connector.web.node.common import OPS
from connector.web.transfers.handlers import (
    JOBS,
    fetch_page,
    new_fetch,
    progress_json,
    start_fetch,
    transfers_page,
)
from connector.web.transfers.jobs import FetchJobs

if TYPE_CHECKING:
    from connector.app import ConnectorApp


def add_transfers_pages(app: web.Application, node: ConnectorApp) -> None:
    app[OPS] = node
    jobs = FetchJobs(node.config.data_dir)
    app[JOBS] = jobs
    app.cleanup_ctx.append(jobs.cleanup_ctx)
    r = app.router
    r.add_get("/admin/transfers/", transfers_page)
    r.add_get("/admin/transfers/progress", progress_json)
    r.add_get("/admin/transfers/new", new_fetch)
    r.add_post("/admin/transfers/new", start_fetch)
    r.add_get("/admin/transfers/fetches/{job}", fetch_page)

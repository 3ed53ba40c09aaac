"""The operating organisation's console at ``/admin/``: overview, participants and hosting,
join tokens, nodes, certification criteria and the revocation list, the audit log, usage.

Pages are behind ``operator-read`` (admin and auditor); every change is a POST form behind
``operator-admin`` carrying the session's CSRF token, and calls ``AdminService`` as the JSON
admin API and the CLI do, so it lands in the audit log. An auditor sees no forms.
"""

from __future__ import annotations

from aiohttp import web

from registry.config import RegistryConfig
from registry.operators.admin import AdminService
from registry.store import RegistryStore
from registry.web.console.audit import add_audit_routes
from registry.web.console.common import CONSOLE, Console
from registry.web.console.nodes import add_node_routes
from registry.web.console.overview import add_overview_routes
from registry.web.console.participants import add_participant_routes
from registry.web.console.tokens import add_token_routes
from registry.web.console.trust import add_trust_routes
from registry.web.console.usage import add_usage_routes


def add_console_pages(app: web.Application, admin: AdminService, store: RegistryStore,
                      config: RegistryConfig) -> None:
    app[CONSOLE] = Console(admin, store, config)
    add_overview_routes(app)
    add_participant_routes(app)
    add_token_routes(app)
    add_node_routes(app)
    add_usage_routes(app)
    add_trust_routes(app)
    add_audit_routes(app)

"""The operating organisation's console at ``/admin/``: the overview, participants and
shared-use hosting (participants.py), join tokens and nodes (enrolment.py), certification
criteria, the revocation list, the audit log and usage (oversight.py).

Pages are behind ``operator-read`` (admin and auditor); every change is a POST form behind
``operator-admin`` carrying the session's CSRF token, and calls ``AdminService`` as the JSON
admin API and the CLI do, so it lands in the audit log. An auditor sees no forms.
"""

from __future__ import annotations

from aiohttp import web

from registry.config import RegistryConfig
from registry.operators.admin import AdminService
from registry.store import RegistryStore
from registry.web.console.common import CONSOLE, Console
from registry.web.console.enrolment import add_enrolment_routes
from registry.web.console.oversight import add_oversight_routes
from registry.web.console.participants import add_participant_routes


def add_console_pages(app: web.Application, admin: AdminService, store: RegistryStore,
                      config: RegistryConfig) -> None:
    app[CONSOLE] = Console(admin, store, config)
    add_oversight_routes(app)
    add_participant_routes(app)
    add_enrolment_routes(app)

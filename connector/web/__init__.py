"""The connector's web pages: the municipality's console (``/admin/``) and the resident portal
(``/portal/``). Handlers are thin: they call the same services the CLI and the JSON API call."""

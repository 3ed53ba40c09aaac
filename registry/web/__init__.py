"""The registry's web pages: the catalog portal (``/``), the developer portal
(``/developers/``) and the operating organisation's console (``/admin/``). Handlers are thin:
they call the same services the JSON APIs call, then render a template."""

"""What both servers' web pages share: the message catalog (Japanese first), templates and
their layout, sessions and CSRF, sign-in, security headers, static assets and HTML errors.

The registry's pages live in ``registry/web/``, the connector's in ``connector/web/``; each
server calls ``mesh.web.render.setup_pages`` with its own templates, static files and
messages, which are layered over the shared ones here.
"""

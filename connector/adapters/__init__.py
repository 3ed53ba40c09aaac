"""Data-plane adapters: sources and sinks of Arrow record batches (docs/adapters.md).

Built-in adapters register through the ``areamesh.adapters`` entry-point group, exactly as a
third-party package would; :mod:`connector.adapters.registry` finds them.
"""

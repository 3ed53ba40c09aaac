"""The data map (データマップ): registered services (services.py), the map built from the
catalog, agreements, metering and services (build.py), its files (export.py), its graph's
layout (svg.py), the HTTP API (api.py) and the CLI (cli.py)."""

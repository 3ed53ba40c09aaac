"""Metering at the registry: usage reported by connectors, summarised per participant (DESIGN §9)."""

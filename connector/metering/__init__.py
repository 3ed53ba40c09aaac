"""Metering on the connector: every transfer, as provider and as consumer (DESIGN §9)."""

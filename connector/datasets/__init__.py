"""Datasets this connector publishes, for its own participant and for hosted tenants."""

"""The billing tables of ``registry.db`` (kept apart from runs.py so that registry.migrations
imports nothing heavy)."""

# Appended to registry/migrations.py MIGRATIONS (plain SQL: SQLite and PostgreSQL alike).
BILLING_MIGRATION = """
CREATE TABLE billing_runs (
    period TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    rules_digest TEXT NOT NULL,
    rules_text TEXT NOT NULL,
    total INTEGER NOT NULL,
    participants INTEGER NOT NULL,
    result TEXT NOT NULL,
    run_at TEXT NOT NULL,
    run_by TEXT NOT NULL
)
"""

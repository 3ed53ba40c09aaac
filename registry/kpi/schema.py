"""The KPI tables (one migration, appended to registry.migrations; no imports, so the
migration list can load it without the services)."""

KPI_MIGRATION = """
CREATE TABLE kpi_outcomes (
    id TEXT PRIMARY KEY,
    name_ja TEXT NOT NULL,
    name_en TEXT NOT NULL,
    unit TEXT NOT NULL,
    target REAL NOT NULL,
    target_date TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('higher', 'lower')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE kpi_outcome_values (
    indicator_id TEXT NOT NULL REFERENCES kpi_outcomes(id),
    period TEXT NOT NULL,
    value REAL NOT NULL,
    source TEXT NOT NULL,
    entered_by TEXT NOT NULL,
    entered_at TEXT NOT NULL,
    PRIMARY KEY (indicator_id, period)
)
"""

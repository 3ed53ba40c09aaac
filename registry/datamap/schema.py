"""The data map's tables in ``registry.db`` (one entry of registry/migrations.py): registered
services, the datasets each takes in, and notarised agreements' purposes."""

DATAMAP_MIGRATION = """
    CREATE TABLE services (
        operator_id TEXT NOT NULL REFERENCES participants(id),
        id TEXT NOT NULL,
        name_ja TEXT NOT NULL,
        name_en TEXT NOT NULL DEFAULT '',
        doc TEXT NOT NULL,
        registered_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (operator_id, id)
    );
    CREATE TABLE service_intake (
        operator_id TEXT NOT NULL,
        service_id TEXT NOT NULL,
        dataset_id TEXT NOT NULL,
        PRIMARY KEY (operator_id, service_id, dataset_id)
    );
    CREATE INDEX service_intake_by_dataset ON service_intake(dataset_id);
    CREATE TABLE agreement_purposes (
        agreement_id TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    )
"""

"""Schema of complete metering (issue 14, part 1): one migration, appended to registry.migrations.

- ``usage_records`` (the provider's reports, migration 5) gains ``provider_org`` (the dataset's
  publisher: a hosted tenant, not its host) and ``consumer_org`` (the consuming participant).
  Rows reported before this migration are filled from the catalog.
- ``usage_consumer_records``: the consumer's own report of each transfer it received, kept apart
  from the provider's so the two can be cross-checked (registry/metering/crosscheck.py).
- ``usage_reports``: every signed report document as received (audit), one per (node, seq).
- ``consent_counts``: consented residents per personal dataset, the latest report per
  (node, dataset, JST day). Counts only; there is no column a resident id could go in.
- ``api_call_counts``: calls to the public and CKAN APIs per JST day, API and key id ('' for
  anonymous calls). Never the key itself.
"""

METERING_MIGRATION = """
ALTER TABLE usage_records ADD COLUMN provider_org TEXT;
ALTER TABLE usage_records ADD COLUMN consumer_org TEXT;
UPDATE usage_records SET provider_org = COALESCE(
    (SELECT d.publisher_id FROM datasets d WHERE d.id = usage_records.dataset_id),
    provider_participant), consumer_org = consumer_participant;
CREATE TABLE usage_consumer_records (
    transfer_id TEXT PRIMARY KEY,
    agreement_id TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    provider_node TEXT NOT NULL,
    consumer_node TEXT NOT NULL,
    consumer_org TEXT NOT NULL,
    records INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    batches INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    reported_at TEXT NOT NULL
);
CREATE INDEX usage_consumer_by_end ON usage_consumer_records(ended_at);
CREATE TABLE usage_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    digest TEXT NOT NULL,
    signed_json TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE UNIQUE INDEX usage_reports_by_seq ON usage_reports(node, seq, digest);
CREATE TABLE consent_counts (
    node TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    day TEXT NOT NULL,
    publisher_id TEXT NOT NULL,
    residents INTEGER NOT NULL,
    consents INTEGER NOT NULL,
    counted_at TEXT NOT NULL,
    PRIMARY KEY (node, dataset_id, day)
);
CREATE TABLE api_call_counts (
    day TEXT NOT NULL,
    api TEXT NOT NULL,
    key_id TEXT NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (day, api, key_id)
)
"""

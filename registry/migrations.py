"""Numbered schema migrations of ``registry.db`` (see mesh.db). Append; never edit."""

from mesh.web.sessions import WEB_SESSIONS_MIGRATION
from registry.billing.schema import BILLING_MIGRATION
from registry.catalog.search_index import CLASSIFICATION_MIGRATION, SEARCH_MIGRATION_V1
from registry.datamap.schema import DATAMAP_MIGRATION
from registry.duties import DUTIES_MIGRATION
from registry.kpi.schema import KPI_MIGRATION
from registry.metering.schema import METERING_MIGRATION
from registry.operators.throttle import THROTTLE_MIGRATION

FEDERATION_MIGRATION = """
CREATE TABLE federations (
    mesh_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    fingerprints TEXT NOT NULL,
    registry_endpoint TEXT NOT NULL,
    added_at TEXT NOT NULL,
    added_by TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'removed')),
    removed_at TEXT,
    checked_at TEXT,
    last_error TEXT,
    crl_der BLOB,
    crl_number INTEGER NOT NULL DEFAULT -1,
    crl_next_update TEXT
)
"""

MIGRATIONS = [
    # 1: participants, join tokens, nodes, certificates, revocation lists
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE participants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE join_tokens (
        id TEXT PRIMARY KEY,
        secret_sha256 TEXT NOT NULL,
        participant_id TEXT NOT NULL REFERENCES participants(id),
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT,
        used_by_node TEXT
    );
    CREATE TABLE nodes (
        participant_id TEXT NOT NULL REFERENCES participants(id),
        name TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        endpoint TEXT,
        last_seen TEXT,
        cert_serial TEXT,
        software_version TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (participant_id, name)
    );
    CREATE TABLE certificates (
        serial TEXT PRIMARY KEY,
        participant_id TEXT NOT NULL REFERENCES participants(id),
        node_name TEXT NOT NULL,
        not_before TEXT NOT NULL,
        not_after TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        revoked_at TEXT,
        revocation_reason TEXT
    );
    CREATE INDEX certificates_by_node ON certificates(participant_id, node_name);
    CREATE TABLE revocation_lists (
        number INTEGER PRIMARY KEY,
        crl_der BLOB NOT NULL,
        this_update TEXT NOT NULL,
        next_update TEXT NOT NULL,
        revoked_serials TEXT NOT NULL
    )
    """,
    # 2: certification status (pending → certified → suspended), shared-use hosting, datasets
    """
    ALTER TABLE participants ADD COLUMN certified_at TEXT;
    UPDATE participants SET status = 'certified', certified_at = updated_at WHERE status = 'active';
    CREATE TABLE hosting (
        tenant_id TEXT PRIMARY KEY REFERENCES participants(id),
        host_id TEXT NOT NULL REFERENCES participants(id),
        created_at TEXT NOT NULL
    );
    CREATE INDEX hosting_by_host ON hosting(host_id);
    CREATE TABLE datasets (
        id TEXT PRIMARY KEY,
        publisher_id TEXT NOT NULL REFERENCES participants(id),
        node_participant_id TEXT NOT NULL,
        node_name TEXT NOT NULL,
        version INTEGER NOT NULL,
        status TEXT NOT NULL,
        doc TEXT NOT NULL,
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL
    );
    CREATE INDEX datasets_by_publisher ON datasets(publisher_id, status)
    """,
    # 3: the catalog's Japanese full-text index (registry/catalog/search_index.py)
    SEARCH_MIGRATION_V1,
    # 4: notarised usage agreements (digests of agreements signed by both connectors)
    """
    CREATE TABLE notarisations (
        digest TEXT PRIMARY KEY,
        agreement_id TEXT NOT NULL,
        dataset_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        consumer TEXT NOT NULL,
        notarised_by TEXT NOT NULL,
        notarised_at TEXT NOT NULL
    );
    CREATE INDEX notarisations_by_dataset ON notarisations(dataset_id)
    """,
    # 5: metering — transfers reported by providing connectors (registry/metering/usage.py)
    """
    CREATE TABLE usage_records (
        transfer_id TEXT PRIMARY KEY,
        agreement_id TEXT NOT NULL,
        dataset_id TEXT NOT NULL,
        provider_participant TEXT NOT NULL,
        consumer_participant TEXT NOT NULL,
        provider_node TEXT NOT NULL,
        consumer_node TEXT NOT NULL,
        records INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        batches INTEGER NOT NULL,
        incremental INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT NOT NULL,
        reported_at TEXT NOT NULL
    );
    CREATE INDEX usage_by_end ON usage_records(ended_at);
    CREATE INDEX usage_by_agreement ON usage_records(agreement_id)
    """,
    # 6: flow-ledger checkpoints signed by connectors (registry/audit/checkpoints.py, 5-2).
    # status 'accepted': one per (node, seq); 'fork': contradicts the accepted ones (conflict says
    # how), kept for audit, one per distinct signed checkpoint.
    """
    CREATE TABLE ledger_checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        node TEXT NOT NULL,
        seq INTEGER NOT NULL,
        head TEXT NOT NULL,
        time TEXT NOT NULL,
        signed_json TEXT NOT NULL,
        received_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('accepted', 'fork')),
        conflict TEXT
    );
    CREATE UNIQUE INDEX ledger_checkpoints_by_seq ON ledger_checkpoints(node, seq)
        WHERE status = 'accepted';
    CREATE UNIQUE INDEX ledger_checkpoints_forks ON ledger_checkpoints(node, seq, head, time)
        WHERE status = 'fork';
    CREATE INDEX ledger_checkpoints_by_head ON ledger_checkpoints(node, head)
    """,
    # 7: operator accounts, API keys (operators' and participants'), the append-only audit log of
    # admin actions, revocable join tokens (registry/operators/)
    """
    CREATE TABLE operators (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'auditor')),
        password_hash TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('operator', 'participant')),
        owner TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        secret_sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at TEXT,
        revoked_by TEXT
    );
    CREATE INDEX api_keys_by_owner ON api_keys(kind, owner);
    CREATE TABLE admin_audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        source TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL,
        outcome TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
    BEGIN SELECT RAISE(ABORT, 'admin_audit is append-only'); END;
    CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
    BEGIN SELECT RAISE(ABORT, 'admin_audit is append-only'); END;
    ALTER TABLE join_tokens ADD COLUMN revoked_at TEXT;
    ALTER TABLE join_tokens ADD COLUMN revoked_by TEXT
    """,
    # 8: duties of notarised agreements as their providers report them (registry/duties.py)
    DUTIES_MIGRATION,
    # 9: operators' browser sessions of the console at /admin/ (mesh/web/sessions.py)
    WEB_SESSIONS_MIGRATION,
    # 10: the data classification as a search facet (registry/catalog/search_index.py)
    CLASSIFICATION_MIGRATION,
    # 11: complete metering: organisations, consumer reports, signed reports, consent counts,
    # API calls (registry/metering/schema.py)
    METERING_MIGRATION,
    # 12: billing runs per period: rules digest and statements (registry/billing/runs.py)
    BILLING_MIGRATION,
    # 13: services registered for the data map, their intake, agreements' purposes (registry/datamap/)
    DATAMAP_MIGRATION,
    # 14: outcome indicators the operator defines, and their monthly values (registry/kpi/)
    KPI_MIGRATION,
    # 15: a participant's reading (katakana), from the list of 全国地方公共団体コード
    # (registry/participants_import.py)
    "ALTER TABLE participants ADD COLUMN reading TEXT",
    # 16: wrong operator passwords, counted where every registry replica sees them
    # (registry/operators/throttle.py)
    THROTTLE_MIGRATION,
    # 17: other meshes' federation documents this registry's operator added, and what the link
    # to each last found (registry/federation/store.py)
    FEDERATION_MIGRATION,
]

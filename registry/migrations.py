"""Numbered schema migrations of ``registry.db`` (see mesh.db). Append; never edit."""

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
]

"""The flow ledger's tables (``ledger.db``): numbered migrations and the append-only triggers.

Version 1: one resident entry per resident per batch — ``entries`` (seq, batch, subject,
records, prev_hash, hash) with the fields a batch shares in ``batches``, residents' lookups
through ``subject_index``. Version 2 (batch entries, see ``chain.py``): ``flow_entries`` holds
one row per batch entry, its resident list as the encoded bytes of
``mesh.ledger_verify.encode_subjects``; ``flow_index`` (subject, seq, records) is the residents'
index over them. Version 1 tables stay as they are: their entries still verify and are read,
and no new ones are written. Version 3: the residents' index is kept in sorted runs
(``flow_index`` gains ``run``; ``flow_index_runs`` lists the runs residents' queries read, and
the merges under way), see ``index.py``; an existing index becomes run 1.

Triggers refuse UPDATE and DELETE of entries and batches; they are created after the numbered
migrations (``mesh.db`` splits scripts on ';', which a trigger body contains), with
``IF NOT EXISTS``.
"""

from __future__ import annotations

MIGRATIONS = [
    """
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        dataset TEXT NOT NULL,
        from_participant TEXT NOT NULL,
        from_node TEXT NOT NULL,
        to_participant TEXT NOT NULL,
        to_node TEXT NOT NULL,
        purpose TEXT NOT NULL,
        agreement TEXT NOT NULL,
        service TEXT,
        component TEXT,
        transfer TEXT
    );
    CREATE TABLE entries (
        seq INTEGER PRIMARY KEY,
        batch INTEGER NOT NULL,
        subject TEXT NOT NULL,
        records INTEGER NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE subject_index (
        subject TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (subject, seq)
    ) WITHOUT ROWID;
    CREATE TABLE ledger_state (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        seq INTEGER NOT NULL,
        head TEXT NOT NULL,
        time TEXT NOT NULL,
        signed_json TEXT NOT NULL,
        published_at TEXT
    )
    """,
    """
    CREATE TABLE flow_entries (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        dataset TEXT NOT NULL,
        from_participant TEXT NOT NULL,
        from_node TEXT NOT NULL,
        to_participant TEXT NOT NULL,
        to_node TEXT NOT NULL,
        purpose TEXT NOT NULL,
        agreement TEXT NOT NULL,
        service TEXT,
        component TEXT,
        transfer TEXT,
        residents INTEGER NOT NULL,
        records INTEGER NOT NULL,
        subjects BLOB NOT NULL,
        subjects_digest TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE flow_index (
        subject TEXT NOT NULL,
        seq INTEGER NOT NULL,
        records INTEGER NOT NULL,
        PRIMARY KEY (subject, seq)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE flow_index_runs (
        run INTEGER PRIMARY KEY,
        rows INTEGER NOT NULL,
        merge_into INTEGER,
        moved_upto TEXT
    );
    CREATE TABLE flow_index_v3 (
        run INTEGER NOT NULL,
        subject TEXT NOT NULL,
        seq INTEGER NOT NULL,
        records INTEGER NOT NULL,
        PRIMARY KEY (run, subject, seq)
    ) WITHOUT ROWID;
    INSERT INTO flow_index_v3 SELECT 1, subject, seq, records FROM flow_index ORDER BY subject, seq;
    INSERT INTO flow_index_runs (run, rows) SELECT 1, COUNT(*) FROM flow_index HAVING COUNT(*) > 0;
    DROP TABLE flow_index;
    ALTER TABLE flow_index_v3 RENAME TO flow_index
    """,
]
TRIGGERS = [
    *(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
      "BEGIN SELECT RAISE(ABORT, 'the flow ledger is append-only'); END"
      for table in ("flow_entries", "entries", "batches") for op in ("UPDATE", "DELETE")),
    "CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints "
    "BEGIN SELECT RAISE(ABORT, 'checkpoints are kept'); END",
    "CREATE TRIGGER IF NOT EXISTS checkpoints_publish_only BEFORE UPDATE ON checkpoints "
    "WHEN OLD.published_at IS NOT NULL OR NEW.seq != OLD.seq OR NEW.head != OLD.head "
    "OR NEW.time != OLD.time OR NEW.signed_json != OLD.signed_json "
    "BEGIN SELECT RAISE(ABORT, 'a checkpoint can only be marked published'); END",
]

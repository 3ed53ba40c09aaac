"""The personal-data flow ledger (DESIGN §8): hash chain, signed checkpoints, export, CLI."""

from connector.ledger.chain import (
    Appended,
    Flow,
    FlowBatch,
    FlowSummary,
    LedgerUnreadable,
    SqliteLedger,
)
from connector.ledger.checkpoint import Checkpoint, SignedCheckpoint, verify_checkpoint
from connector.ledger.export import read_ndjson, verify_export
from connector.ledger.verify import (
    GENESIS,
    MAX_RESIDENTS,
    BatchHasher,
    VerifyReport,
    decode_subjects,
    encode_subjects,
    entry_hash,
    subjects_digest,
)

__all__ = ["GENESIS", "MAX_RESIDENTS", "Appended", "BatchHasher", "Checkpoint", "Flow", "FlowBatch",
           "FlowSummary", "LedgerUnreadable", "SignedCheckpoint", "SqliteLedger", "VerifyReport",
           "decode_subjects", "encode_subjects", "entry_hash", "read_ndjson", "subjects_digest",
           "verify_checkpoint", "verify_export"]

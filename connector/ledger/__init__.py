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
from connector.ledger.verify import GENESIS, BatchHasher, VerifyReport, entry_hash

__all__ = ["GENESIS", "Appended", "BatchHasher", "Checkpoint", "Flow", "FlowBatch", "FlowSummary",
           "LedgerUnreadable", "SignedCheckpoint", "SqliteLedger", "VerifyReport", "entry_hash",
           "read_ndjson", "verify_checkpoint", "verify_export"]

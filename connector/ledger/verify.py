"""Checking the flow ledger's hash chain: ``verify_chain`` and the entry hash.

The checks live in ``mesh.ledger_verify`` (its docstring lists the fault reasons): the registry
audits uploaded exports with the same code and must not import ``connector``. This module keeps
the connector's import path.
"""

from mesh.ledger_verify import (
    GENESIS,
    HASHED,
    BatchHasher,
    VerifyReport,
    entry_hash,
    verify_chain,
)

__all__ = ["GENESIS", "HASHED", "BatchHasher", "VerifyReport", "entry_hash", "verify_chain"]

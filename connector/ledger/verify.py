"""Checking the flow ledger's hash chain: ``verify_chain``, the entry hashes, the resident list.

The checks live in ``mesh.ledger_verify`` (its docstring defines the entries, the encoding of a
batch entry's resident list and the fault reasons): the registry audits uploaded exports with
the same code and must not import ``connector``. This module keeps the connector's import path.
"""

from mesh.ledger_verify import (
    BATCH_HASHED,
    GENESIS,
    HASHED,
    MAX_RESIDENTS,
    BatchHasher,
    VerifyReport,
    decode_subjects,
    encode_subjects,
    entry_hash,
    subjects_digest,
    verify_chain,
)

__all__ = ["BATCH_HASHED", "GENESIS", "HASHED", "MAX_RESIDENTS", "BatchHasher", "VerifyReport",
           "decode_subjects", "encode_subjects", "entry_hash", "subjects_digest", "verify_chain"]

"""Signed checkpoints of the flow ledger (5-2), as the connector's ledger package names them.

The checkpoint document, its signing and its verification live in ``mesh.ledger_checkpoints``:
the registry verifies the checkpoints connectors submit with the same code and must not import
``connector``. This module keeps the connector's import path.
"""

from mesh.ledger_checkpoints import KIND, Checkpoint, SignedCheckpoint, verify_checkpoint

__all__ = ["KIND", "Checkpoint", "SignedCheckpoint", "verify_checkpoint"]

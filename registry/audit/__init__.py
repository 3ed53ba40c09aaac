"""Audit of personal-data flows at the registry (DESIGN §8, 5-2): the ledger checkpoints connectors
submit, and checking a connector's ledger export against them."""

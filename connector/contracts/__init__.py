"""Contracts on the connector: negotiation and agreements (the policy model is shared: mesh/policy.py)."""

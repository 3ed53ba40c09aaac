"""Contracts between connectors: the usage policies of dataset offers and their evaluation."""

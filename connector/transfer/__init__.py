"""Peer-to-peer transfer of agreed datasets: the provider's stream, the consumer's resumable fetch."""

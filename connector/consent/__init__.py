"""Residents' consent on the connector (DESIGN §8): the store, the per-batch filter, the CLI."""

from connector.consent.filter import ConsentFilter, FilteredBatch, SourceSubjects
from connector.consent.scope import ConsentScope
from connector.consent.store import Consent, ConsentEvent, ConsentGrant, ConsentStore

__all__ = ["Consent", "ConsentEvent", "ConsentFilter", "ConsentGrant", "ConsentScope",
           "ConsentStore", "FilteredBatch", "SourceSubjects"]

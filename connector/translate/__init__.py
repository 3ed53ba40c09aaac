"""データ翻訳機能: translate data between municipal layouts and standard schemas, batch by batch."""

from connector.translate.mapping import Mapping, MappingError, Reject, TranslateResult, load_mapping

__all__ = ["Mapping", "MappingError", "Reject", "TranslateResult", "load_mapping"]

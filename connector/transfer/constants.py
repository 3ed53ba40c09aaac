"""The transfer's plain constants, in a module that imports nothing heavy: the console's pages
and the journal need them without loading pyarrow (``batches.py``, ``output.py`` re-export them)."""

from __future__ import annotations

import hashlib

CHAIN_START = hashlib.sha256(b"areamesh-transfer-v1").hexdigest()   # the stream digest's seed
DIGEST_ALGORITHM = "xxh3-128"                                       # of each batch
FORMATS = ("ndjson", "csv", "raw")  # of a fetch's output; raw: the source file as it is (passthrough)

"""The transfer's plain constants, in a module that imports nothing heavy: the console's pages
and the journal need them without loading pyarrow (``batches.py``, ``output.py`` re-export them)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHAIN_START = hashlib.sha256(b"areamesh-transfer-v1").hexdigest()   # the stream digest's seed
DIGEST_ALGORITHM = "xxh3-128"                                       # of each batch
# of a fetch's output; raw: the source file as it is (passthrough); arrow: an Arrow IPC stream;
# csv-excel: CSV for Excel (UTF-8 with a BOM, CRLF line ends; ``fetch --format csv --excel``)
FORMATS = ("ndjson", "csv", "raw", "arrow", "csv-excel")
CSV_FORMATS = ("csv", "csv-excel")
SINKS = "sinks"        # DATA_DIR/sinks/<name>.yaml: the named sinks (connector/transfer/sinks.py)
STAGING = "staging"    # DATA_DIR/sinks/staging/: verified fetches waiting to be loaded


def sinks_dir(data_dir: Path) -> Path:
    return Path(data_dir) / SINKS


def staging_dir(data_dir: Path) -> Path:
    return sinks_dir(data_dir) / STAGING

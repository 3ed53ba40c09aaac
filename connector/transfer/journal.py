"""TransferJournal: what the consumer has durably received of one transfer.

``DATA_DIR/transfers/<agreement>/<output key>.json`` records the transfer id, the dataset version,
the last acknowledged batch, the stream digest up to it, record counts and the lengths of the
part files at that point. It is rewritten atomically only after the part files are fsynced, so
after any crash it describes a prefix of the output that is really on disk. Running the same
fetch again finds it and resumes; a completed transfer removes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from connector.datasets.store import checked_id
from connector.transfer.constants import CHAIN_START, DIGEST_ALGORITHM
from mesh.errors import Conflict
from mesh.files import atomic_write


@dataclass
class TransferJournal:
    agreement_id: str
    out: str
    fmt: str
    mapping_digest: str
    transfer_id: str = ""
    version: str = ""
    since_version: str = ""
    incremental: bool = False
    batch_rows: int = 0            # a resume must cut the same batches as the first attempt
    acked_seq: int = 0
    chain: str = CHAIN_START
    records: int = 0               # records received (before mapping)
    written: int = 0               # records written to the output
    rejected_rows: int = 0
    bytes: int = 0
    data_offset: int = 0
    rejects_offset: int = 0
    digest_algorithm: str = DIGEST_ALGORITHM   # journals written before it existed: sha256

    @staticmethod
    def path_for(data_dir: Path, agreement_id: str, out: Path) -> Path:
        key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
        return data_dir / "transfers" / checked_id(agreement_id) / f"{key}.json"

    @classmethod
    def read(cls, path: Path) -> TransferJournal:
        """The journal at ``path`` (one written before ``digest_algorithm`` existed: sha256)."""
        return cls(**{"digest_algorithm": "sha256", **json.loads(path.read_text())})

    @classmethod
    def load_or_new(cls, path: Path, *, agreement_id: str, out: Path, fmt: str,
                    mapping_digest: str) -> TransferJournal:
        fresh = cls(agreement_id, str(out.resolve()), fmt, mapping_digest)
        if not path.exists():
            return fresh
        found = cls.read(path)
        if (found.fmt, found.mapping_digest) != (fmt, mapping_digest):
            raise Conflict(
                f"an unfinished transfer to {out} used --format {found.fmt} and another mapping; "
                "run it with the same options to resume, or pass --restart to start over",
                message_ja=f"{out} への未完了の転送は別の形式・マッピングで始まっています"
                           "（同じ指定で再実行するか --restart を指定してください）",
                code="transfer_options_changed")
        return found

    @classmethod
    def stale(cls, path: Path) -> bool:
        """A journal whose stream digest another digest algorithm built (an older version's):
        its transfer cannot be continued, only started over."""
        return path.exists() and cls.read(path).digest_algorithm != DIGEST_ALGORITHM

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), ensure_ascii=False).encode(), mode=0o600)

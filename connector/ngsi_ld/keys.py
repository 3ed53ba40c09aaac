"""API keys of the NGSI-LD facade: what the connector's operator gives its own applications.

``DATA_DIR/ngsi-ld/keys.json`` (0600) lists each key's id, label, the views it may read (or
``*``), creation and revocation times and the SHA-256 of its secret; the secret itself is shown
once, at ``areamesh connector ngsi-ld key create``. An app sends it as ``Authorization: Bearer
amld_<id>_<secret>``. Keys are 256-bit random, so a hash comparison is enough (nothing to guess);
a revoked key answers 401 ``api_key_revoked``. The file is re-read when it changes, so a new or
revoked key counts at once, without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mesh.clock import iso, utcnow
from mesh.datasets import ID_PATTERN
from mesh.errors import InvalidRequest, NotFound, Unauthenticated
from mesh.files import SECRET_MODE, atomic_write

PREFIX = "amld_"
_TOKEN = re.compile(r"amld_([a-f0-9]{12})_([A-Za-z0-9_-]{20,100})\Z")


def facade_dir(data_dir: Path) -> Path:
    path = Path(data_dir) / "ngsi-ld"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@dataclass
class FacadeKey:
    id: str
    label: str
    views: list[str]
    sha256: str
    created_at: str
    revoked_at: str | None = None

    def admits(self, view: str) -> bool:
        return "*" in self.views or view in self.views

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "sha256"}


@dataclass
class FacadeKeys:
    data_dir: Path
    _stamp: tuple[int, int] | None = field(default=None, repr=False)
    _keys: dict[str, FacadeKey] = field(default_factory=dict, repr=False)

    @property
    def path(self) -> Path:
        return Path(self.data_dir) / "ngsi-ld" / "keys.json"

    def load(self) -> dict[str, FacadeKey]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._keys, self._stamp = {}, None
            return self._keys
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            doc = json.loads(self.path.read_text())
            self._keys = {k["id"]: FacadeKey(**k) for k in doc.get("keys", [])}
            self._stamp = stamp
        return self._keys

    def _save(self, keys: dict[str, FacadeKey]) -> None:
        facade_dir(self.data_dir)
        atomic_write(self.path, json.dumps({"keys": [asdict(k) for k in keys.values()]},
                                           ensure_ascii=False, indent=2).encode(), mode=SECRET_MODE)
        self._stamp = None

    def create(self, label: str, views: list[str]) -> tuple[FacadeKey, str]:
        """A new key and its secret token (returned only here)."""
        bad = [v for v in views if v != "*" and not ID_PATTERN.match(v)]
        if bad:
            raise InvalidRequest(f"{bad[0]!r} is not a view name (or '*' for all views)",
                                 message_ja=f"{bad[0]!r} はビュー名ではありません", code="invalid_view_name")
        if not views:
            raise InvalidRequest("give the views the key may read (--view NAME, or --view '*')",
                                 message_ja="キーで読めるビューを --view で指定してください",
                                 code="invalid_request")
        keys = dict(self.load())
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        token = f"{PREFIX}{key_id}_{secret}"
        key = FacadeKey(key_id, label, sorted(set(views)), hashlib.sha256(token.encode()).hexdigest(),
                        iso(utcnow()))
        keys[key_id] = key
        self._save(keys)
        return key, token

    def revoke(self, key_id: str) -> FacadeKey:
        keys = dict(self.load())
        if key_id not in keys:
            raise NotFound(f"no NGSI-LD facade key {key_id}", message_ja=f"キー {key_id} はありません",
                           code="unknown_key")
        if keys[key_id].revoked_at is None:
            keys[key_id].revoked_at = iso(utcnow())
            self._save(keys)
        return keys[key_id]

    def check(self, token: str) -> FacadeKey | None:
        """The key ``token`` proves; None if it is not a facade key at all. A known key id with
        a wrong secret, or a revoked key, raises Unauthenticated."""
        m = _TOKEN.match(token)
        if not m:
            return None
        key = self.load().get(m.group(1))
        if key is None or not hmac.compare_digest(key.sha256, hashlib.sha256(token.encode()).hexdigest()):
            raise Unauthenticated("unknown NGSI-LD facade key", message_ja="キーが正しくありません",
                                  code="invalid_api_key")
        if key.revoked_at:
            raise Unauthenticated(f"NGSI-LD facade key {key.id} was revoked at {key.revoked_at}",
                                  message_ja="このキーは失効しています", code="api_key_revoked")
        return key

"""NGSI-LD sink: upsert a dataset's rows as entities into an Orion-LD type context broker.

Config: ``broker`` (base URL, required), ``model`` (how a row becomes an entity: ``flat`` — the
default, rows as the ``ngsi_ld`` source writes them, ``id``/``type``/one column per attribute —
or ``builtin:aed``, ``builtin:evacuation_sites``, ``builtin:public_toilets``, or a model YAML
file; ``connector/ngsi_ld/models.py``), ``batch`` (entities per request, default 100, at most
1000), ``options`` (``replace``, the default: an entity's attributes are replaced; ``update``:
attributes are added or changed, others kept), ``context`` (the @context URL sent with the
entities; default the model's own context, or the core context), ``tenant`` (``NGSILD-Tenant``),
``headers`` (e.g. an ``Authorization`` header for the broker), ``timeout`` (seconds, default 30).

Writing converts and keeps the entities; ``commit`` sends them with ``POST
/ngsi-ld/v1/entityOperations/upsert`` in batches. A row that gives no entity (no id) fails
``write``, so nothing is sent. The broker's answers: 201 and 204 are success; 207 Multi-Status
lists per-entity errors, which are all collected (over every batch) and reported together, each
with its entity id and the broker's ProblemDetails; any other 4xx stops with the broker's
problem; 5xx, 429 and connection failures are ``Unavailable``. NGSI-LD has no transaction across
requests, so when a later batch fails the earlier ones stay upserted: upsert is idempotent, and
loading again after a fix converges (``areamesh connector sink load``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow as pa

from connector.adapters._config import bad_key, get_float, get_int, get_mapping, get_str
from connector.adapters.base import SinkError
from connector.ngsi_ld.models import CORE_CONTEXT, load_model
from mesh.errors import Unavailable

KIND = "ngsi_ld"
MAX_BATCH = 1000
MAX_REPORTED = 20      # per-entity errors named in the message (all are in details)


class NgsiLdSink:
    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        broker = get_str(config, "broker", KIND)
        if not broker.startswith(("http://", "https://")):
            raise bad_key(KIND, "broker", "must be an http:// or https:// URL")
        self.url = broker.rstrip("/") + "/ngsi-ld/v1/entityOperations/upsert"
        self.model = load_model(get_str(config, "model", KIND, "flat"), base_dir)
        self.batch = get_int(config, "batch", KIND, 100, minimum=1)
        if self.batch > MAX_BATCH:
            raise bad_key(KIND, "batch", f"at most {MAX_BATCH} entities per request")
        self.options = get_str(config, "options", KIND, "replace")
        if self.options not in ("replace", "update"):
            raise bad_key(KIND, "options", "must be replace or update")
        model_context = self.model.context if self.model.context not in (None, "local") else None
        self.context = get_str(config, "context", KIND, model_context or CORE_CONTEXT)
        self.headers = {"Content-Type": "application/ld+json", "Accept": "application/json",
                        **get_mapping(config, "headers", KIND)}
        tenant = get_str(config, "tenant", KIND, None)
        if tenant:
            self.headers["NGSILD-Tenant"] = tenant
        self.timeout = get_float(config, "timeout", KIND, 30.0)
        self.entities: list[dict[str, Any]] = []
        self.rows = 0
        self.sent = 0

    async def write(self, batch: pa.RecordBatch) -> None:
        for row in batch.to_pylist():
            self.rows += 1
            entity = self.model.entity(row)
            if entity is None:
                raise SinkError(f"row {self.rows} gives no NGSI-LD entity with model "
                                f"{self.model.name}: its id columns are empty or not a URI",
                                message_ja=f"{self.rows} 行目からエンティティを作れません（ID の列が空です）",
                                details={"row": self.rows})
            self.entities.append({**entity, "@context": self.context})

    async def commit(self) -> None:
        failures: list[dict[str, Any]] = []
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                             headers=self.headers) as http:
                for start in range(0, len(self.entities), self.batch):
                    chunk = self.entities[start:start + self.batch]
                    failures += await self._upsert(http, chunk)
                    self.sent += len(chunk)
        finally:
            self.entities = []
        if failures:
            shown = "; ".join(f"{f['entityId']}: {f['reason']}" for f in failures[:MAX_REPORTED])
            more = f" (and {len(failures) - MAX_REPORTED} more)" if len(failures) > MAX_REPORTED else ""
            raise SinkError(f"the broker refused {len(failures)} of {self.sent} entities: {shown}{more}",
                            message_ja=f"ブローカーが {self.sent} 件中 {len(failures)} 件のエンティティを"
                                       "受け付けませんでした",
                            code="ngsi_ld_partial_failure",
                            details={"failed": failures, "sent": self.sent,
                                     "succeeded": self.sent - len(failures)})

    async def _upsert(self, http: aiohttp.ClientSession, chunk: list[dict[str, Any]]
                      ) -> list[dict[str, Any]]:
        params = {"options": "update"} if self.options == "update" else None
        try:
            async with http.post(self.url, data=json.dumps(chunk, ensure_ascii=False).encode(),
                                 params=params) as resp:
                status, body = resp.status, await resp.read()
        except TimeoutError:
            raise Unavailable(f"POST {self.url}: timed out", message_ja="ブローカーが時間内に応答しません",
                              code="broker_unavailable") from None
        except aiohttp.ClientError as exc:
            raise Unavailable(f"POST {self.url}: {exc}", message_ja="ブローカーに接続できません",
                              code="broker_unavailable") from None
        if status in (200, 201, 204):
            return []
        doc = _json(body)
        if status == 207 and isinstance(doc, dict):
            return [{"entityId": str(e.get("entityId")), "reason": _problem_text(e.get("error")),
                     "problem": e.get("error")}
                    for e in doc.get("errors") or [] if isinstance(e, dict)]
        text = _problem_text(doc) or body[:200].decode("utf-8", "replace")
        if status >= 500 or status == 429:
            raise Unavailable(f"POST {self.url}: HTTP {status}: {text}",
                              message_ja=f"ブローカーがエラー (HTTP {status}) を返しました",
                              code="broker_unavailable")
        raise SinkError(f"POST {self.url}: HTTP {status}: {text}",
                        message_ja=f"ブローカーが書き込みを拒否しました (HTTP {status})",
                        code="ngsi_ld_refused", details={"status": status, "problem": doc})

    async def abort(self) -> None:
        self.entities = []


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _problem_text(problem: Any) -> str:
    if not isinstance(problem, dict):
        return ""
    kind = str(problem.get("type", "")).rsplit("/", 1)[-1]
    detail = problem.get("detail") or problem.get("title") or ""
    return f"{kind}: {detail}" if kind else str(detail)

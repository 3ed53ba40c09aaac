"""What the provider remembers between small transfers (issue 18, item 2) is dropped the moment
what it was made from changes, without any process: each test here fails if the invalidation it
names is taken away.

- ``SmallSources``: a small file's typed records are kept under the whole published
  description, compared with ``==`` against a copy taken when kept: an edited description, or
  the very dict kept edited in place, is not served from the kept records.
- ``Prepared``: the encoded batches kept with the records are the bytes ``sized_pieces`` and
  ``batch_digest`` make; a transfer whose record limit cuts a kept batch encodes the cut batch,
  never the kept whole one.
- ``PeerAuthInterceptor``: the wrapped handler is kept per method only for that very handler;
  the caller is still authenticated (certificate, revocation) at every call.
"""

from __future__ import annotations

import copy

import grpc
import pyarrow as pa
import pytest

from connector.metering.store import MIGRATIONS, UsageStore
from connector.transfer.acks import SentChains
from connector.transfer.batches import (
    CHAIN_START,
    batch_digest,
    chain_next,
    decode_batch,
    schema_bytes,
    sized_pieces,
)
from connector.transfer.provider import TransferProvider
from connector.transfer.small_sources import Prepared, SmallSources
from connector.transfer.typed import SchemaTyping
from mesh.certs import PeerIdentity
from mesh.clock import utcnow
from mesh.db import Database
from mesh.errors import PermissionDenied
from mesh.grpc_auth import PeerAuthInterceptor, current_peer
from mesh.proto.areamesh.v1 import peer_pb2

SCHEMA = pa.schema([("id", pa.int64()), ("名称", pa.string())])


def _batch(n: int) -> pa.RecordBatch:
    return pa.record_batch([pa.array(range(1, n + 1), pa.int64()),
                            pa.array([f"観測点{i}" for i in range(1, n + 1)])], schema=SCHEMA)


class FileLike:
    """A small source as ``SmallSources`` sees one: a content key and its records."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.state = ("dev", "ino", 100, 1, 1)

    def stable_content_key(self):
        return self.state

    async def read(self, batch_rows: int):
        yield _batch(self.rows)


def _doc() -> dict:
    return {"id": "feed", "schema": {"fields": [{"name": "id", "type": "integer"},
                                                {"name": "名称", "type": "string"}]},
            "offers": [{"id": "o", "policy": {"permissions": [{"action": "use"}]}}]}


async def _keep(kept: SmallSources, source: FileLike, doc: dict) -> Prepared:
    key = SmallSources.key(source, doc, "v-1", 1000)
    assert key is not None and kept.get("feed", key) is None
    prepared = await kept.prepare("feed", key, source, SchemaTyping(SCHEMA, doc["schema"]), 1000)
    assert prepared is not None
    return prepared


async def test_kept_records_are_not_served_for_an_edited_description():
    kept, source, doc = SmallSources(), FileLike(2), _doc()
    prepared = await _keep(kept, source, doc)
    assert kept.get("feed", SmallSources.key(source, copy.deepcopy(doc), "v-1", 1000)) is prepared
    edited = copy.deepcopy(doc)
    edited["schema"]["fields"][1]["type"] = "integer"      # deep inside: types the column anew
    assert kept.get("feed", SmallSources.key(source, edited, "v-1", 1000)) is None
    # and the source, the version or the batch size changed: not served either
    assert kept.get("feed", SmallSources.key(source, doc, "v-2", 1000)) is None
    assert kept.get("feed", SmallSources.key(source, doc, "v-1", 10)) is None
    source.state = ("dev", "ino", 101, 2, 2)
    assert kept.get("feed", SmallSources.key(source, doc, "v-1", 1000)) is None


async def test_kept_records_are_not_served_once_the_kept_dict_itself_is_edited_in_place():
    kept, source, doc = SmallSources(), FileLike(2), _doc()
    await _keep(kept, source, doc)
    doc["offers"][0]["policy"]["permissions"][0]["action"] = "distribute"   # same dict object
    assert kept.get("feed", SmallSources.key(source, doc, "v-1", 1000)) is None


async def test_kept_pieces_are_what_the_batch_encodes_to():
    prepared = Prepared.of(SCHEMA, (_batch(3), _batch(1)))
    assert prepared.schema_ipc == schema_bytes(SCHEMA)
    for batch, pieces in zip(prepared.batches, prepared.pieces, strict=True):
        assert [(p.num_rows, d, g) for p, d, g in pieces] == \
            [(p.num_rows, d, batch_digest(d)) for p, d in sized_pieces(batch)]


async def _stream(tmp_path, kept: Prepared, cap: int | None) -> list[peer_pb2.TransferChunk]:
    async with Database(tmp_path / "metering.db", MIGRATIONS) as db:
        provider = TransferProvider(None, UsageStore(db), "urn:areamesh:org:270008:node:main")
        assert isinstance(provider.sent_chains, SentChains)
        return [c async for c in provider._batches(
            None, "t-1", peer_pb2.TransferRequest(agreement_id="a-1"), 1000, cap, None,
            kept=kept)]


async def test_a_record_limit_cutting_a_kept_batch_sends_the_cut_batch(tmp_path):
    prepared = Prepared.of(SCHEMA, (_batch(5),))
    chunks = await _stream(tmp_path, prepared, cap=3)
    batches = [c.batch for c in chunks if c.WhichOneof("body") == "batch"]
    summary = chunks[-1].summary
    assert [b.records for b in batches] == [3] and summary.records == 3 and summary.truncated
    assert decode_batch(batches[0].arrow_ipc, SCHEMA).column("id").to_pylist() == [1, 2, 3]
    assert batches[0].digest == batch_digest(batches[0].arrow_ipc)
    assert summary.digest == chain_next(CHAIN_START, batches[0].digest)

    whole = await _stream(tmp_path / "whole", prepared, cap=None)   # uncut: the kept bytes
    assert [c.batch.arrow_ipc for c in whole if c.WhichOneof("body") == "batch"] == \
        [prepared.pieces[0][0][1]]
    assert whole[-1].summary.records == 5 and not whole[-1].summary.truncated


# ---- the interceptor's kept wrappers ----------------------------------------------------------

GOOD, REVOKED = b"-----good-----", b"-----revoked-----"


def _identity(serial: int) -> PeerIdentity:
    return PeerIdentity("282103", "main", "urn:areamesh:org:282103:node:main", serial,
                        "CN=mesh CA", utcnow())


class Revocations:
    def __init__(self) -> None:
        self.revoked: set[int] = set()
        self.checked = 0

    async def check(self, identity: PeerIdentity) -> None:
        self.checked += 1
        if identity.serial in self.revoked:
            raise PermissionDenied("revoked", code="certificate_revoked")


class Aborted(Exception):
    pass


class Context:
    def __init__(self, pem: bytes) -> None:
        self.pem = pem

    def auth_context(self) -> dict:
        return {"x509_pem_cert": [self.pem]}

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def abort(self, code, details):
        raise Aborted(f"{code.name}: {details}")


class Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def _interceptor(checker: Revocations) -> PeerAuthInterceptor:
    serials = {GOOD: 1, REVOKED: 2}
    return PeerAuthInterceptor(checker, resolve=lambda pem: _identity(serials[pem]))


async def test_a_method_whose_handler_changes_gets_the_new_handler_wrapped():
    checker = Revocations()
    interceptor = _interceptor(checker)

    async def first(request, context):
        return "first " + current_peer().uri

    async def second(request, context):
        return "second " + current_peer().uri

    handlers = [grpc.unary_unary_rpc_method_handler(first)]

    async def continuation(details):
        return handlers[0]

    method = "/areamesh.v1.PeerService/Ping"
    one = await interceptor.intercept_service(continuation, Details(method))
    assert await interceptor.intercept_service(continuation, Details(method)) is one  # kept
    assert (await one.unary_unary(None, Context(GOOD))).startswith("first urn:")
    handlers[0] = grpc.unary_unary_rpc_method_handler(second)
    two = await interceptor.intercept_service(continuation, Details(method))
    assert two is not one
    assert (await two.unary_unary(None, Context(GOOD))).startswith("second urn:")


async def test_a_kept_wrapper_still_checks_every_caller_at_every_call():
    checker = Revocations()
    interceptor = _interceptor(checker)

    async def answer(request, context):
        return current_peer().serial

    async def continuation(details):
        return handler

    handler = grpc.unary_unary_rpc_method_handler(answer)
    method = "/areamesh.v1.PeerService/Transfer"
    wrapped = await interceptor.intercept_service(continuation, Details(method))
    assert await wrapped.unary_unary(None, Context(GOOD)) == 1
    assert await wrapped.unary_unary(None, Context(REVOKED)) == 2
    checker.revoked.add(2)       # the revocation list now names the second certificate
    again = await interceptor.intercept_service(continuation, Details(method))
    assert again is wrapped
    with pytest.raises(Aborted, match="PERMISSION_DENIED"):
        await again.unary_unary(None, Context(REVOKED))
    assert await again.unary_unary(None, Context(GOOD)) == 1
    assert checker.checked == 4

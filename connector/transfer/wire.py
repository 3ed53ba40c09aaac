"""The transfer stream's batches on the wire, encoded and decoded by hand.

A batch travels as ``TransferChunk{batch: DataBatch{...}}``. Through the generated classes a
4 MiB payload is copied twice on the way out (into the message, then into its serialized
form) and once more on the way in (reading ``arrow_ipc``). Here the provider writes the very
bytes ``SerializeToString`` would (fields in number order, zero values left out) with one
concatenation, and the consumer reads the five ``DataBatch`` fields with a small varint reader,
keeping the payload as a zero-copy ``memoryview`` of the received message.

The wire stays plain protobuf: any client can parse these bytes with the generated classes,
and anything this reader does not expect — a header, a summary, unknown or out-of-place
fields — goes to the generated parser.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from mesh.proto.areamesh.v1 import peer_pb2

TRANSFER_METHOD = "/areamesh.v1.PeerService/Transfer"
TRANSFER_WITH_ACKS_METHOD = "/areamesh.v1.PeerService/TransferWithAcks"

_BATCH_TAG = 0x12                                   # TransferChunk.batch: field 2, length-delimited
_SEQ, _FIRST, _RECORDS, _PAYLOAD, _DIGEST = 0x08, 0x10, 0x18, 0x22, 0x2A   # DataBatch fields 1–5
_UINT64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class WireBatch:
    """One received ``DataBatch``; ``payload`` is a view into the received message."""

    seq: int
    first_record: int
    records: int
    payload: memoryview
    digest: str


class _NotPlain(Exception):
    """The bytes are valid protobuf this reader leaves to the generated parser (or invalid)."""


def varint(value: int) -> bytes:
    """``value`` as a protobuf varint (negative int64 values as their 10-byte two's complement)."""
    value &= _UINT64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _int_field(tag: int, value: int) -> bytes:
    return bytes((tag,)) + varint(value) if value else b""


def encode_batch_chunk(seq: int, first_record: int, records: int, payload: bytes | memoryview,
                       digest: str) -> bytes:
    """``TransferChunk{batch: DataBatch{...}}`` serialized, byte for byte as the generated class
    would; the payload is copied once."""
    head = _int_field(_SEQ, seq) + _int_field(_FIRST, first_record) + _int_field(_RECORDS, records)
    size = len(payload)
    if size:
        head += bytes((_PAYLOAD,)) + varint(size)
    text = digest.encode()
    tail = bytes((_DIGEST,)) + varint(len(text)) + text if text else b""
    inner = len(head) + size + len(tail)
    return b"".join((bytes((_BATCH_TAG,)), varint(inner), head, payload, tail))


def serialize_chunk(chunk: peer_pb2.TransferChunk | bytes) -> bytes:
    """The Transfer method's response serializer: pre-encoded chunks pass through as they are."""
    return chunk if isinstance(chunk, bytes) else chunk.SerializeToString()


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if shift >= 63 and value > _UINT64:
                raise _NotPlain
            return value, pos
        shift += 7
        if shift > 63:
            raise _NotPlain
    raise _NotPlain


def _int64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _read_batch(data: bytes) -> WireBatch:
    """The batch of a chunk that holds exactly one ``batch`` field of known fields."""
    end = len(data)
    if end == 0 or data[0] != _BATCH_TAG:
        raise _NotPlain
    size, pos = _read_varint(data, 1, end)
    if pos + size != end:
        raise _NotPlain
    seq = first = records = 0
    start = stop = pos  # empty payload
    digest = ""
    while pos < end:
        tag, pos = _read_varint(data, pos, end)
        if tag in (_SEQ, _FIRST, _RECORDS):
            value, pos = _read_varint(data, pos, end)
            if tag == _SEQ:
                seq = _int64(value)
            elif tag == _FIRST:
                first = _int64(value)
            else:
                records = _int64(value)
        elif tag in (_PAYLOAD, _DIGEST):
            length, pos = _read_varint(data, pos, end)
            if pos + length > end:
                raise _NotPlain
            if tag == _PAYLOAD:  # a repeated field: the last one counts, as in protobuf
                start, stop = pos, pos + length
            else:
                try:
                    digest = data[pos:pos + length].decode()
                except UnicodeDecodeError:
                    raise _NotPlain from None
            pos += length
        else:
            raise _NotPlain
    return WireBatch(seq, first, records, memoryview(data)[start:stop], digest)


def decode_chunk(data: bytes) -> peer_pb2.TransferChunk | WireBatch:
    """The Transfer method's response deserializer: a batch as a ``WireBatch``, a header or a
    summary as the generated ``TransferChunk``."""
    try:
        return _read_batch(data)
    except _NotPlain:
        pass
    chunk = peer_pb2.TransferChunk.FromString(data)
    if chunk.WhichOneof("body") == "batch":
        b = chunk.batch
        return WireBatch(b.seq, b.first_record, b.records, memoryview(b.arrow_ipc), b.digest)
    return chunk


def transfer_call(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamMultiCallable:
    """``PeerService.Transfer`` on ``channel``, its responses read by ``decode_chunk``."""
    return channel.unary_stream(TRANSFER_METHOD,
                                request_serializer=peer_pb2.TransferRequest.SerializeToString,
                                response_deserializer=decode_chunk, _registered_method=True)


def transfer_with_acks_call(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamMultiCallable:
    """``PeerService.TransferWithAcks`` on ``channel``, its responses read by ``decode_chunk``."""
    return channel.stream_stream(TRANSFER_WITH_ACKS_METHOD,
                                 request_serializer=peer_pb2.TransferUp.SerializeToString,
                                 response_deserializer=decode_chunk, _registered_method=True)

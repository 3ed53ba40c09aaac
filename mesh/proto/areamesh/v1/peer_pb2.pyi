import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NegotiateRequest(_message.Message):
    __slots__ = ("dataset_id", "offer_id", "purpose", "records_requested")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    offer_id: str
    purpose: str
    records_requested: int
    def __init__(self, dataset_id: _Optional[str] = ..., offer_id: _Optional[str] = ..., purpose: _Optional[str] = ..., records_requested: _Optional[int] = ...) -> None: ...

class NegotiateResponse(_message.Message):
    __slots__ = ("state", "signed_agreement_json", "reason_json", "agreement_id")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AGREEMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    REASON_JSON_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    state: str
    signed_agreement_json: bytes
    reason_json: bytes
    agreement_id: str
    def __init__(self, state: _Optional[str] = ..., signed_agreement_json: _Optional[bytes] = ..., reason_json: _Optional[bytes] = ..., agreement_id: _Optional[str] = ...) -> None: ...

class CountersignRequest(_message.Message):
    __slots__ = ("signed_agreement_json",)
    SIGNED_AGREEMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    signed_agreement_json: bytes
    def __init__(self, signed_agreement_json: _Optional[bytes] = ...) -> None: ...

class CountersignResponse(_message.Message):
    __slots__ = ("state", "digest")
    STATE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    state: str
    digest: str
    def __init__(self, state: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("server_identity", "caller_identity", "server_time", "payload")
    SERVER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CALLER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    server_identity: str
    caller_identity: str
    server_time: _timestamp_pb2.Timestamp
    payload: bytes
    def __init__(self, server_identity: _Optional[str] = ..., caller_identity: _Optional[str] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payload: _Optional[bytes] = ...) -> None: ...

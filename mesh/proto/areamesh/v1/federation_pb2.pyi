import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mesh.proto.areamesh.v1 import registry_pb2 as _registry_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FederationExchangeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FederationExchangeResponse(_message.Message):
    __slots__ = ("mesh_id", "crl_der", "crl_number", "next_update")
    MESH_ID_FIELD_NUMBER: _ClassVar[int]
    CRL_DER_FIELD_NUMBER: _ClassVar[int]
    CRL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NEXT_UPDATE_FIELD_NUMBER: _ClassVar[int]
    mesh_id: str
    crl_der: bytes
    crl_number: int
    next_update: _timestamp_pb2.Timestamp
    def __init__(self, mesh_id: _Optional[str] = ..., crl_der: _Optional[bytes] = ..., crl_number: _Optional[int] = ..., next_update: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

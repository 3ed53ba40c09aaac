import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeInfo(_message.Message):
    __slots__ = ("participant_id", "participant_name", "participant_type", "node_name", "endpoint", "tls_server_name", "last_seen", "certificate_serial", "online", "identity_uri")
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_NAME_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_TYPE_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    TLS_SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_URI_FIELD_NUMBER: _ClassVar[int]
    participant_id: str
    participant_name: str
    participant_type: str
    node_name: str
    endpoint: str
    tls_server_name: str
    last_seen: _timestamp_pb2.Timestamp
    certificate_serial: str
    online: bool
    identity_uri: str
    def __init__(self, participant_id: _Optional[str] = ..., participant_name: _Optional[str] = ..., participant_type: _Optional[str] = ..., node_name: _Optional[str] = ..., endpoint: _Optional[str] = ..., tls_server_name: _Optional[str] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., certificate_serial: _Optional[str] = ..., online: _Optional[bool] = ..., identity_uri: _Optional[str] = ...) -> None: ...

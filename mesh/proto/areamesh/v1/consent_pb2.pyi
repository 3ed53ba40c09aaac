import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GrantConsentRequest(_message.Message):
    __slots__ = ("resident_assertion", "dataset_id", "purpose", "service_id", "component_id", "items", "expires_at")
    RESIDENT_ASSERTION_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    resident_assertion: bytes
    dataset_id: str
    purpose: str
    service_id: str
    component_id: str
    items: _containers.RepeatedScalarFieldContainer[str]
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, resident_assertion: _Optional[bytes] = ..., dataset_id: _Optional[str] = ..., purpose: _Optional[str] = ..., service_id: _Optional[str] = ..., component_id: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConsentRecord(_message.Message):
    __slots__ = ("id", "resident", "dataset_id", "participant", "service_id", "component_id", "purpose", "items", "all_items", "granted_at", "expires_at", "withdrawn_at", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ALL_ITEMS_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    resident: str
    dataset_id: str
    participant: str
    service_id: str
    component_id: str
    purpose: str
    items: _containers.RepeatedScalarFieldContainer[str]
    all_items: bool
    granted_at: str
    expires_at: str
    withdrawn_at: str
    status: str
    def __init__(self, id: _Optional[str] = ..., resident: _Optional[str] = ..., dataset_id: _Optional[str] = ..., participant: _Optional[str] = ..., service_id: _Optional[str] = ..., component_id: _Optional[str] = ..., purpose: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., all_items: _Optional[bool] = ..., granted_at: _Optional[str] = ..., expires_at: _Optional[str] = ..., withdrawn_at: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class WithdrawConsentRequest(_message.Message):
    __slots__ = ("consent_id", "resident", "dataset_id", "purpose", "service_id", "component_id", "reason")
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    consent_id: str
    resident: str
    dataset_id: str
    purpose: str
    service_id: str
    component_id: str
    reason: str
    def __init__(self, consent_id: _Optional[str] = ..., resident: _Optional[str] = ..., dataset_id: _Optional[str] = ..., purpose: _Optional[str] = ..., service_id: _Optional[str] = ..., component_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WithdrawConsentResponse(_message.Message):
    __slots__ = ("withdrawn",)
    WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    withdrawn: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, withdrawn: _Optional[_Iterable[str]] = ...) -> None: ...

class ListConsentsRequest(_message.Message):
    __slots__ = ("resident", "dataset_id", "active_only")
    RESIDENT_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    resident: str
    dataset_id: str
    active_only: bool
    def __init__(self, resident: _Optional[str] = ..., dataset_id: _Optional[str] = ..., active_only: _Optional[bool] = ...) -> None: ...

class ListConsentsResponse(_message.Message):
    __slots__ = ("consents",)
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    consents: _containers.RepeatedCompositeFieldContainer[ConsentRecord]
    def __init__(self, consents: _Optional[_Iterable[_Union[ConsentRecord, _Mapping]]] = ...) -> None: ...

import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConfirmDutyRequest(_message.Message):
    __slots__ = ("agreement_id", "duty_index", "action", "note")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUTY_INDEX_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    duty_index: int
    action: str
    note: str
    def __init__(self, agreement_id: _Optional[str] = ..., duty_index: _Optional[int] = ..., action: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class DutyState(_message.Message):
    __slots__ = ("agreement_id", "duty_index", "action", "within", "state", "data_since", "due_at", "confirmed_at")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUTY_INDEX_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WITHIN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DATA_SINCE_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_AT_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    duty_index: int
    action: str
    within: str
    state: str
    data_since: _timestamp_pb2.Timestamp
    due_at: _timestamp_pb2.Timestamp
    confirmed_at: _timestamp_pb2.Timestamp
    def __init__(self, agreement_id: _Optional[str] = ..., duty_index: _Optional[int] = ..., action: _Optional[str] = ..., within: _Optional[str] = ..., state: _Optional[str] = ..., data_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., confirmed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TransferRequest(_message.Message):
    __slots__ = ("agreement_id", "transfer_id", "after_seq", "since_version", "batch_rows", "passthrough", "service_id", "component_id")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    SINCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    PASSTHROUGH_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_ID_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    transfer_id: str
    after_seq: int
    since_version: str
    batch_rows: int
    passthrough: bool
    service_id: str
    component_id: str
    def __init__(self, agreement_id: _Optional[str] = ..., transfer_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., since_version: _Optional[str] = ..., batch_rows: _Optional[int] = ..., passthrough: _Optional[bool] = ..., service_id: _Optional[str] = ..., component_id: _Optional[str] = ...) -> None: ...

class AcknowledgeTransferRequest(_message.Message):
    __slots__ = ("agreement_id", "transfer_id", "acked_seq", "chain")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    ACKED_SEQ_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    transfer_id: str
    acked_seq: int
    chain: str
    def __init__(self, agreement_id: _Optional[str] = ..., transfer_id: _Optional[str] = ..., acked_seq: _Optional[int] = ..., chain: _Optional[str] = ...) -> None: ...

class AcknowledgeTransferResponse(_message.Message):
    __slots__ = ("acked_seq", "complete")
    ACKED_SEQ_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    acked_seq: int
    complete: bool
    def __init__(self, acked_seq: _Optional[int] = ..., complete: _Optional[bool] = ...) -> None: ...

class TransferUp(_message.Message):
    __slots__ = ("request", "ack")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    request: TransferRequest
    ack: AcknowledgeTransferRequest
    def __init__(self, request: _Optional[_Union[TransferRequest, _Mapping]] = ..., ack: _Optional[_Union[AcknowledgeTransferRequest, _Mapping]] = ...) -> None: ...

class TransferChunk(_message.Message):
    __slots__ = ("header", "batch", "summary", "acked", "whole")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    WHOLE_FIELD_NUMBER: _ClassVar[int]
    header: TransferHeader
    batch: DataBatch
    summary: TransferSummary
    acked: AcknowledgeTransferResponse
    whole: TransferWhole
    def __init__(self, header: _Optional[_Union[TransferHeader, _Mapping]] = ..., batch: _Optional[_Union[DataBatch, _Mapping]] = ..., summary: _Optional[_Union[TransferSummary, _Mapping]] = ..., acked: _Optional[_Union[AcknowledgeTransferResponse, _Mapping]] = ..., whole: _Optional[_Union[TransferWhole, _Mapping]] = ...) -> None: ...

class TransferWhole(_message.Message):
    __slots__ = ("header", "batches", "summary")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    header: TransferHeader
    batches: _containers.RepeatedCompositeFieldContainer[DataBatch]
    summary: TransferSummary
    def __init__(self, header: _Optional[_Union[TransferHeader, _Mapping]] = ..., batches: _Optional[_Iterable[_Union[DataBatch, _Mapping]]] = ..., summary: _Optional[_Union[TransferSummary, _Mapping]] = ...) -> None: ...

class TransferHeader(_message.Message):
    __slots__ = ("transfer_id", "dataset_id", "version", "arrow_schema", "incremental", "max_records", "consent_filtered", "passthrough", "media_type")
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARROW_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORDS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FILTERED_FIELD_NUMBER: _ClassVar[int]
    PASSTHROUGH_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    transfer_id: str
    dataset_id: str
    version: str
    arrow_schema: bytes
    incremental: bool
    max_records: int
    consent_filtered: bool
    passthrough: bool
    media_type: str
    def __init__(self, transfer_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., version: _Optional[str] = ..., arrow_schema: _Optional[bytes] = ..., incremental: _Optional[bool] = ..., max_records: _Optional[int] = ..., consent_filtered: _Optional[bool] = ..., passthrough: _Optional[bool] = ..., media_type: _Optional[str] = ...) -> None: ...

class DataBatch(_message.Message):
    __slots__ = ("seq", "first_record", "records", "arrow_ipc", "digest")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    FIRST_RECORD_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    seq: int
    first_record: int
    records: int
    arrow_ipc: bytes
    digest: str
    def __init__(self, seq: _Optional[int] = ..., first_record: _Optional[int] = ..., records: _Optional[int] = ..., arrow_ipc: _Optional[bytes] = ..., digest: _Optional[str] = ...) -> None: ...

class TransferSummary(_message.Message):
    __slots__ = ("batches", "records", "bytes", "digest", "truncated", "removed_records")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    batches: int
    records: int
    bytes: int
    digest: str
    truncated: bool
    removed_records: int
    def __init__(self, batches: _Optional[int] = ..., records: _Optional[int] = ..., bytes: _Optional[int] = ..., digest: _Optional[str] = ..., truncated: _Optional[bool] = ..., removed_records: _Optional[int] = ...) -> None: ...

class TerminateRequest(_message.Message):
    __slots__ = ("agreement_id", "reason_json")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_JSON_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    reason_json: bytes
    def __init__(self, agreement_id: _Optional[str] = ..., reason_json: _Optional[bytes] = ...) -> None: ...

class TerminateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("agreement_id", "since_version")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    since_version: str
    def __init__(self, agreement_id: _Optional[str] = ..., since_version: _Optional[str] = ...) -> None: ...

class ChangeNotice(_message.Message):
    __slots__ = ("dataset_id", "version", "previous_version", "changed_at", "cause")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    version: str
    previous_version: str
    changed_at: _timestamp_pb2.Timestamp
    cause: str
    def __init__(self, dataset_id: _Optional[str] = ..., version: _Optional[str] = ..., previous_version: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cause: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("state", "digest", "notarised_at")
    STATE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    NOTARISED_AT_FIELD_NUMBER: _ClassVar[int]
    state: str
    digest: str
    notarised_at: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[str] = ..., digest: _Optional[str] = ..., notarised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

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

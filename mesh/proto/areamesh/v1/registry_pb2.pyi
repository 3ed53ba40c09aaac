import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mesh.proto.areamesh.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NotariseAgreementRequest(_message.Message):
    __slots__ = ("signed_agreement_json",)
    SIGNED_AGREEMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    signed_agreement_json: bytes
    def __init__(self, signed_agreement_json: _Optional[bytes] = ...) -> None: ...

class NotariseAgreementResponse(_message.Message):
    __slots__ = ("digest", "notarised_at")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    NOTARISED_AT_FIELD_NUMBER: _ClassVar[int]
    digest: str
    notarised_at: _timestamp_pb2.Timestamp
    def __init__(self, digest: _Optional[str] = ..., notarised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PublishDatasetRequest(_message.Message):
    __slots__ = ("dataset_json",)
    DATASET_JSON_FIELD_NUMBER: _ClassVar[int]
    dataset_json: bytes
    def __init__(self, dataset_json: _Optional[bytes] = ...) -> None: ...

class DatasetRecord(_message.Message):
    __slots__ = ("id", "publisher_id", "publisher_name", "version", "dataset_json", "served_by", "created", "modified", "mesh_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_JSON_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_FIELD_NUMBER: _ClassVar[int]
    MESH_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    publisher_id: str
    publisher_name: str
    version: int
    dataset_json: bytes
    served_by: str
    created: _timestamp_pb2.Timestamp
    modified: _timestamp_pb2.Timestamp
    mesh_id: str
    def __init__(self, id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., publisher_name: _Optional[str] = ..., version: _Optional[int] = ..., dataset_json: _Optional[bytes] = ..., served_by: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., modified: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mesh_id: _Optional[str] = ...) -> None: ...

class WithdrawDatasetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WithdrawDatasetResponse(_message.Message):
    __slots__ = ("id", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("id", "mesh_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    MESH_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    mesh_id: str
    def __init__(self, id: _Optional[str] = ..., mesh_id: _Optional[str] = ...) -> None: ...

class SearchDatasetsRequest(_message.Message):
    __slots__ = ("q", "theme", "publisher", "prefecture", "standard_type", "personal", "page", "per_page", "federated")
    Q_FIELD_NUMBER: _ClassVar[int]
    THEME_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    PREFECTURE_FIELD_NUMBER: _ClassVar[int]
    STANDARD_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PER_PAGE_FIELD_NUMBER: _ClassVar[int]
    FEDERATED_FIELD_NUMBER: _ClassVar[int]
    q: str
    theme: str
    publisher: str
    prefecture: str
    standard_type: str
    personal: str
    page: int
    per_page: int
    federated: bool
    def __init__(self, q: _Optional[str] = ..., theme: _Optional[str] = ..., publisher: _Optional[str] = ..., prefecture: _Optional[str] = ..., standard_type: _Optional[str] = ..., personal: _Optional[str] = ..., page: _Optional[int] = ..., per_page: _Optional[int] = ..., federated: _Optional[bool] = ...) -> None: ...

class FacetCount(_message.Message):
    __slots__ = ("value", "count")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    value: str
    count: int
    def __init__(self, value: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class Facet(_message.Message):
    __slots__ = ("name", "counts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    counts: _containers.RepeatedCompositeFieldContainer[FacetCount]
    def __init__(self, name: _Optional[str] = ..., counts: _Optional[_Iterable[_Union[FacetCount, _Mapping]]] = ...) -> None: ...

class SearchDatasetsResponse(_message.Message):
    __slots__ = ("total", "results", "facets")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    FACETS_FIELD_NUMBER: _ClassVar[int]
    total: int
    results: _containers.RepeatedCompositeFieldContainer[DatasetRecord]
    facets: _containers.RepeatedCompositeFieldContainer[Facet]
    def __init__(self, total: _Optional[int] = ..., results: _Optional[_Iterable[_Union[DatasetRecord, _Mapping]]] = ..., facets: _Optional[_Iterable[_Union[Facet, _Mapping]]] = ...) -> None: ...

class EnrolRequest(_message.Message):
    __slots__ = ("token_id", "token_secret", "ca_fingerprint", "node_name", "csr_pem")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_SECRET_FIELD_NUMBER: _ClassVar[int]
    CA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    token_secret: str
    ca_fingerprint: str
    node_name: str
    csr_pem: bytes
    def __init__(self, token_id: _Optional[str] = ..., token_secret: _Optional[str] = ..., ca_fingerprint: _Optional[str] = ..., node_name: _Optional[str] = ..., csr_pem: _Optional[bytes] = ...) -> None: ...

class EnrolResponse(_message.Message):
    __slots__ = ("certificate_pem", "trust_bundle", "participant_id", "participant_name", "not_after")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    TRUST_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_NAME_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    trust_bundle: TrustBundle
    participant_id: str
    participant_name: str
    not_after: _timestamp_pb2.Timestamp
    def __init__(self, certificate_pem: _Optional[bytes] = ..., trust_bundle: _Optional[_Union[TrustBundle, _Mapping]] = ..., participant_id: _Optional[str] = ..., participant_name: _Optional[str] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: bytes
    def __init__(self, csr_pem: _Optional[bytes] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("certificate_pem", "trust_bundle", "not_after")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    TRUST_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    trust_bundle: TrustBundle
    not_after: _timestamp_pb2.Timestamp
    def __init__(self, certificate_pem: _Optional[bytes] = ..., trust_bundle: _Optional[_Union[TrustBundle, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("advertise_endpoint", "software_version")
    ADVERTISE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    advertise_endpoint: str
    software_version: str
    def __init__(self, advertise_endpoint: _Optional[str] = ..., software_version: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("server_time", "revocation_list_number")
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_LIST_NUMBER_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    revocation_list_number: int
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revocation_list_number: _Optional[int] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("participant_id", "mesh_id")
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    MESH_ID_FIELD_NUMBER: _ClassVar[int]
    participant_id: str
    mesh_id: str
    def __init__(self, participant_id: _Optional[str] = ..., mesh_id: _Optional[str] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[_common_pb2.NodeInfo]
    def __init__(self, nodes: _Optional[_Iterable[_Union[_common_pb2.NodeInfo, _Mapping]]] = ...) -> None: ...

class GetTrustBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrustBundle(_message.Message):
    __slots__ = ("mesh_id", "ca_certificates_pem", "federated")
    MESH_ID_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATES_PEM_FIELD_NUMBER: _ClassVar[int]
    FEDERATED_FIELD_NUMBER: _ClassVar[int]
    mesh_id: str
    ca_certificates_pem: _containers.RepeatedScalarFieldContainer[bytes]
    federated: _containers.RepeatedCompositeFieldContainer[FederatedMesh]
    def __init__(self, mesh_id: _Optional[str] = ..., ca_certificates_pem: _Optional[_Iterable[bytes]] = ..., federated: _Optional[_Iterable[_Union[FederatedMesh, _Mapping]]] = ...) -> None: ...

class FederatedMesh(_message.Message):
    __slots__ = ("mesh_id", "name", "ca_certificates_pem", "crl_der")
    MESH_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATES_PEM_FIELD_NUMBER: _ClassVar[int]
    CRL_DER_FIELD_NUMBER: _ClassVar[int]
    mesh_id: str
    name: str
    ca_certificates_pem: _containers.RepeatedScalarFieldContainer[bytes]
    crl_der: bytes
    def __init__(self, mesh_id: _Optional[str] = ..., name: _Optional[str] = ..., ca_certificates_pem: _Optional[_Iterable[bytes]] = ..., crl_der: _Optional[bytes] = ...) -> None: ...

class GetRevocationListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevocationList(_message.Message):
    __slots__ = ("crl_der", "number", "this_update", "next_update")
    CRL_DER_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    THIS_UPDATE_FIELD_NUMBER: _ClassVar[int]
    NEXT_UPDATE_FIELD_NUMBER: _ClassVar[int]
    crl_der: bytes
    number: int
    this_update: _timestamp_pb2.Timestamp
    next_update: _timestamp_pb2.Timestamp
    def __init__(self, crl_der: _Optional[bytes] = ..., number: _Optional[int] = ..., this_update: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_update: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UsageRecord(_message.Message):
    __slots__ = ("transfer_id", "agreement_id", "dataset_id", "records", "bytes", "batches", "started_at", "ended_at", "incremental")
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_FIELD_NUMBER: _ClassVar[int]
    transfer_id: str
    agreement_id: str
    dataset_id: str
    records: int
    bytes: int
    batches: int
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    incremental: bool
    def __init__(self, transfer_id: _Optional[str] = ..., agreement_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., records: _Optional[int] = ..., bytes: _Optional[int] = ..., batches: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., incremental: _Optional[bool] = ...) -> None: ...

class ReportUsageRequest(_message.Message):
    __slots__ = ("records", "signed_report_json")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[UsageRecord]
    signed_report_json: bytes
    def __init__(self, records: _Optional[_Iterable[_Union[UsageRecord, _Mapping]]] = ..., signed_report_json: _Optional[bytes] = ...) -> None: ...

class ReportUsageResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "rejected", "consent_counts_accepted", "consent_counts_rejected", "report_digest")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    CONSENT_COUNTS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    CONSENT_COUNTS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    REPORT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedUsage]
    consent_counts_accepted: int
    consent_counts_rejected: _containers.RepeatedCompositeFieldContainer[RejectedUsage]
    report_digest: str
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedUsage, _Mapping]]] = ..., consent_counts_accepted: _Optional[int] = ..., consent_counts_rejected: _Optional[_Iterable[_Union[RejectedUsage, _Mapping]]] = ..., report_digest: _Optional[str] = ...) -> None: ...

class RejectedUsage(_message.Message):
    __slots__ = ("transfer_id", "code", "message")
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    transfer_id: str
    code: str
    message: str
    def __init__(self, transfer_id: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SubmitLedgerCheckpointsRequest(_message.Message):
    __slots__ = ("signed_checkpoint_json",)
    SIGNED_CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    signed_checkpoint_json: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, signed_checkpoint_json: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SubmitLedgerCheckpointsResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedCheckpoint]
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedCheckpoint, _Mapping]]] = ...) -> None: ...

class RejectedCheckpoint(_message.Message):
    __slots__ = ("index", "seq", "code", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    seq: int
    code: str
    message: str
    def __init__(self, index: _Optional[int] = ..., seq: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GetLedgerCheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLedgerCheckpointResponse(_message.Message):
    __slots__ = ("held", "signed_checkpoint_json", "received_at", "forks")
    HELD_FIELD_NUMBER: _ClassVar[int]
    SIGNED_CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    FORKS_FIELD_NUMBER: _ClassVar[int]
    held: bool
    signed_checkpoint_json: bytes
    received_at: str
    forks: int
    def __init__(self, held: _Optional[bool] = ..., signed_checkpoint_json: _Optional[bytes] = ..., received_at: _Optional[str] = ..., forks: _Optional[int] = ...) -> None: ...

class ReportDutiesRequest(_message.Message):
    __slots__ = ("duties",)
    DUTIES_FIELD_NUMBER: _ClassVar[int]
    duties: _containers.RepeatedCompositeFieldContainer[DutyReport]
    def __init__(self, duties: _Optional[_Iterable[_Union[DutyReport, _Mapping]]] = ...) -> None: ...

class DutyReport(_message.Message):
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

class ReportDutiesResponse(_message.Message):
    __slots__ = ("accepted", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedDuty]
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedDuty, _Mapping]]] = ...) -> None: ...

class RejectedDuty(_message.Message):
    __slots__ = ("agreement_id", "duty_index", "code", "message")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUTY_INDEX_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    duty_index: int
    code: str
    message: str
    def __init__(self, agreement_id: _Optional[str] = ..., duty_index: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class RegisterServiceRequest(_message.Message):
    __slots__ = ("service_json",)
    SERVICE_JSON_FIELD_NUMBER: _ClassVar[int]
    service_json: bytes
    def __init__(self, service_json: _Optional[bytes] = ...) -> None: ...

class ServiceRecord(_message.Message):
    __slots__ = ("operator_id", "id", "service_json", "updated_at")
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_JSON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    operator_id: str
    id: str
    service_json: bytes
    updated_at: str
    def __init__(self, operator_id: _Optional[str] = ..., id: _Optional[str] = ..., service_json: _Optional[bytes] = ..., updated_at: _Optional[str] = ...) -> None: ...

class ListServicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceRecord]
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceRecord, _Mapping]]] = ...) -> None: ...

class RemoveServiceRequest(_message.Message):
    __slots__ = ("operator_id", "id")
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    operator_id: str
    id: str
    def __init__(self, operator_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class RemoveServiceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

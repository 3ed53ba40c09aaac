from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LinkedIdLevels(_message.Message):
    __slots__ = ("platform", "local_id", "ial", "aal", "asserted_ial", "asserted_aal", "elevated_from", "linked_at")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    IAL_FIELD_NUMBER: _ClassVar[int]
    AAL_FIELD_NUMBER: _ClassVar[int]
    ASSERTED_IAL_FIELD_NUMBER: _ClassVar[int]
    ASSERTED_AAL_FIELD_NUMBER: _ClassVar[int]
    ELEVATED_FROM_FIELD_NUMBER: _ClassVar[int]
    LINKED_AT_FIELD_NUMBER: _ClassVar[int]
    platform: str
    local_id: str
    ial: int
    aal: int
    asserted_ial: int
    asserted_aal: int
    elevated_from: str
    linked_at: str
    def __init__(self, platform: _Optional[str] = ..., local_id: _Optional[str] = ..., ial: _Optional[int] = ..., aal: _Optional[int] = ..., asserted_ial: _Optional[int] = ..., asserted_aal: _Optional[int] = ..., elevated_from: _Optional[str] = ..., linked_at: _Optional[str] = ...) -> None: ...

class Elevation(_message.Message):
    __slots__ = ("platform", "local_id", "level", "before", "after", "vouched_by")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    VOUCHED_BY_FIELD_NUMBER: _ClassVar[int]
    platform: str
    local_id: str
    level: str
    before: int
    after: int
    vouched_by: str
    def __init__(self, platform: _Optional[str] = ..., local_id: _Optional[str] = ..., level: _Optional[str] = ..., before: _Optional[int] = ..., after: _Optional[int] = ..., vouched_by: _Optional[str] = ...) -> None: ...

class LinkRequest(_message.Message):
    __slots__ = ("assertion_a", "assertion_b")
    ASSERTION_A_FIELD_NUMBER: _ClassVar[int]
    ASSERTION_B_FIELD_NUMBER: _ClassVar[int]
    assertion_a: bytes
    assertion_b: bytes
    def __init__(self, assertion_a: _Optional[bytes] = ..., assertion_b: _Optional[bytes] = ...) -> None: ...

class LinkResponse(_message.Message):
    __slots__ = ("pseudonym", "created", "merged", "linked", "elevations")
    PSEUDONYM_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    LINKED_FIELD_NUMBER: _ClassVar[int]
    ELEVATIONS_FIELD_NUMBER: _ClassVar[int]
    pseudonym: str
    created: bool
    merged: bool
    linked: _containers.RepeatedCompositeFieldContainer[LinkedIdLevels]
    elevations: _containers.RepeatedCompositeFieldContainer[Elevation]
    def __init__(self, pseudonym: _Optional[str] = ..., created: _Optional[bool] = ..., merged: _Optional[bool] = ..., linked: _Optional[_Iterable[_Union[LinkedIdLevels, _Mapping]]] = ..., elevations: _Optional[_Iterable[_Union[Elevation, _Mapping]]] = ...) -> None: ...

class UnlinkRequest(_message.Message):
    __slots__ = ("platform", "local_id", "assertion")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    ASSERTION_FIELD_NUMBER: _ClassVar[int]
    platform: str
    local_id: str
    assertion: bytes
    def __init__(self, platform: _Optional[str] = ..., local_id: _Optional[str] = ..., assertion: _Optional[bytes] = ...) -> None: ...

class UnlinkResponse(_message.Message):
    __slots__ = ("platform", "local_id", "remaining", "reverted")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    REVERTED_FIELD_NUMBER: _ClassVar[int]
    platform: str
    local_id: str
    remaining: int
    reverted: int
    def __init__(self, platform: _Optional[str] = ..., local_id: _Optional[str] = ..., remaining: _Optional[int] = ..., reverted: _Optional[int] = ...) -> None: ...

class GetPseudonymRequest(_message.Message):
    __slots__ = ("local_id", "platform", "for_participant")
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    FOR_PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    local_id: str
    platform: str
    for_participant: str
    def __init__(self, local_id: _Optional[str] = ..., platform: _Optional[str] = ..., for_participant: _Optional[str] = ...) -> None: ...

class GetPseudonymResponse(_message.Message):
    __slots__ = ("pseudonym", "for_participant")
    PSEUDONYM_FIELD_NUMBER: _ClassVar[int]
    FOR_PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    pseudonym: str
    for_participant: str
    def __init__(self, pseudonym: _Optional[str] = ..., for_participant: _Optional[str] = ...) -> None: ...

class ResolvePseudonymRequest(_message.Message):
    __slots__ = ("pseudonym",)
    PSEUDONYM_FIELD_NUMBER: _ClassVar[int]
    pseudonym: str
    def __init__(self, pseudonym: _Optional[str] = ...) -> None: ...

class ResolvePseudonymResponse(_message.Message):
    __slots__ = ("platform", "local_id")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    platform: str
    local_id: str
    def __init__(self, platform: _Optional[str] = ..., local_id: _Optional[str] = ...) -> None: ...

class GetLevelsRequest(_message.Message):
    __slots__ = ("local_id", "platform", "min_ial", "min_aal")
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    MIN_IAL_FIELD_NUMBER: _ClassVar[int]
    MIN_AAL_FIELD_NUMBER: _ClassVar[int]
    local_id: str
    platform: str
    min_ial: int
    min_aal: int
    def __init__(self, local_id: _Optional[str] = ..., platform: _Optional[str] = ..., min_ial: _Optional[int] = ..., min_aal: _Optional[int] = ...) -> None: ...

class LevelDecision(_message.Message):
    __slots__ = ("allowed", "code", "message", "message_ja")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_JA_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    code: str
    message: str
    message_ja: str
    def __init__(self, allowed: _Optional[bool] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., message_ja: _Optional[str] = ...) -> None: ...

class GetLevelsResponse(_message.Message):
    __slots__ = ("levels", "decision")
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    levels: LinkedIdLevels
    decision: LevelDecision
    def __init__(self, levels: _Optional[_Union[LinkedIdLevels, _Mapping]] = ..., decision: _Optional[_Union[LevelDecision, _Mapping]] = ...) -> None: ...

class CheckTransferLevelsRequest(_message.Message):
    __slots__ = ("target_platform", "local_ids")
    TARGET_PLATFORM_FIELD_NUMBER: _ClassVar[int]
    LOCAL_IDS_FIELD_NUMBER: _ClassVar[int]
    target_platform: str
    local_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, target_platform: _Optional[str] = ..., local_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TransferLevels(_message.Message):
    __slots__ = ("source_known", "source_ial", "source_aal", "linked", "target_ial", "target_aal")
    SOURCE_KNOWN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IAL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_AAL_FIELD_NUMBER: _ClassVar[int]
    LINKED_FIELD_NUMBER: _ClassVar[int]
    TARGET_IAL_FIELD_NUMBER: _ClassVar[int]
    TARGET_AAL_FIELD_NUMBER: _ClassVar[int]
    source_known: bool
    source_ial: int
    source_aal: int
    linked: bool
    target_ial: int
    target_aal: int
    def __init__(self, source_known: _Optional[bool] = ..., source_ial: _Optional[int] = ..., source_aal: _Optional[int] = ..., linked: _Optional[bool] = ..., target_ial: _Optional[int] = ..., target_aal: _Optional[int] = ...) -> None: ...

class CheckTransferLevelsResponse(_message.Message):
    __slots__ = ("levels",)
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    levels: _containers.RepeatedCompositeFieldContainer[TransferLevels]
    def __init__(self, levels: _Optional[_Iterable[_Union[TransferLevels, _Mapping]]] = ...) -> None: ...

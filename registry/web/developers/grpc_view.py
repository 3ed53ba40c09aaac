"""The mesh's gRPC contract, read from the generated descriptors in ``mesh/proto``: every
service with its methods, every message with its fields, every enum with its values.

The generated modules carry no source comments (protoc leaves them out of the embedded
descriptor), so names and types are what there is to show.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor

import mesh.proto.areamesh.v1 as generated

PACKAGE = "areamesh.v1"
# Which server offers a service (the servers register them in registry/app.py and
# connector/app.py; tests/test_developer_portal.py checks this table against both).
SERVED_BY = {"areamesh.v1.RegistryService": "registry",
             "areamesh.v1.IdentityService": "registry",
             "areamesh.v1.FederationService": "registry",   # registry to registry (federation)
             "areamesh.v1.PeerService": "connector",
             "areamesh.v1.ConsentService": "connector"}
_SCALARS = {getattr(FieldDescriptor, name): name[5:].lower()
            for name in dir(FieldDescriptor) if name.startswith("TYPE_")}


@dataclass
class Method:
    name: str
    request: str                   # full name of the request message
    response: str
    client_streaming: bool
    server_streaming: bool


@dataclass
class Service:
    name: str
    full_name: str
    file: str
    served_by: str | None
    methods: list[Method]


@dataclass
class FieldRow:
    number: int
    name: str
    type: str                      # a scalar name or a message/enum full name
    linked: bool                   # the type is a message or enum listed on the page
    label: str                     # repeated, map, optional, oneof NAME or ""


@dataclass
class Message:
    full_name: str
    file: str
    fields: list[FieldRow]


@dataclass
class Enum:
    full_name: str
    file: str
    values: list[tuple[str, int]]


@dataclass
class GrpcContract:
    services: list[Service]
    messages: list[Message]
    enums: list[Enum]

    @property
    def known(self) -> set[str]:
        """Full names of the messages and enums this page lists (and can link to)."""
        return {m.full_name for m in self.messages} | {e.full_name for e in self.enums}


def type_anchor(full_name: str) -> str:
    """The fragment id of a message or enum: type-areamesh-v1-TransferChunk."""
    return "type-" + re.sub(r"[^A-Za-z0-9_-]+", "-", full_name)


def short_name(full_name: str) -> str:
    """A name of the mesh's own package without it (TransferChunk); others stay whole."""
    return full_name.removeprefix(PACKAGE + ".")


def proto_files() -> list[FileDescriptor]:
    """The file descriptors of every generated ``*_pb2`` module of the mesh."""
    files = []
    for info in sorted(pkgutil.iter_modules(generated.__path__), key=lambda m: m.name):
        if info.name.endswith("_pb2"):
            files.append(importlib.import_module(f"{generated.__name__}.{info.name}").DESCRIPTOR)
    return files


def _label(f: FieldDescriptor) -> str:
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        return "map"
    if f.is_repeated:
        return "repeated"
    oneof = f.containing_oneof
    if oneof is not None and not _synthetic(oneof):
        return f"oneof {oneof.name}"
    if f.has_presence and f.message_type is None:
        return "optional"
    return ""


def _synthetic(oneof: Any) -> bool:
    """proto3 ``optional`` wraps a field in a one-field oneof named ``_<field>``."""
    return len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name


def _field_type(f: FieldDescriptor) -> str:
    if f.message_type is not None:
        entry = f.message_type
        if entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            return f"map<{_field_type(key)}, {_field_type(value)}>"
        return entry.full_name
    if f.enum_type is not None:
        return f.enum_type.full_name
    return _SCALARS.get(f.type, "unknown")


def _walk(message: Descriptor, file: str, ours: set[str], messages: list[Message],
          enums: list[Enum]) -> None:
    if message.GetOptions().map_entry:
        return
    rows = [FieldRow(f.number, f.name, _field_type(f), _field_type(f) in ours, _label(f))
            for f in message.fields]
    messages.append(Message(message.full_name, file, rows))
    for enum in message.enum_types:
        enums.append(_enum(enum, file))
    for nested in message.nested_types:
        _walk(nested, file, ours, messages, enums)


def _enum(enum: EnumDescriptor, file: str) -> Enum:
    return Enum(enum.full_name, file, [(v.name, v.number) for v in enum.values])


def _names(message: Descriptor) -> set[str]:
    names = {message.full_name} | {e.full_name for e in message.enum_types}
    for nested in message.nested_types:
        names |= _names(nested)
    return names


@cache
def grpc_contract() -> GrpcContract:
    files = proto_files()
    ours: set[str] = set()
    for f in files:
        ours |= {e.full_name for e in f.enum_types_by_name.values()}
        for m in f.message_types_by_name.values():
            ours |= _names(m)
    services, messages, enums = [], [], []
    for f in files:
        for s in f.services_by_name.values():
            services.append(Service(s.name, s.full_name, f.name, SERVED_BY.get(s.full_name), [
                Method(m.name, m.input_type.full_name, m.output_type.full_name,
                       m.client_streaming, m.server_streaming) for m in s.methods]))
        enums += [_enum(e, f.name) for e in f.enum_types_by_name.values()]
        for m in f.message_types_by_name.values():
            _walk(m, f.name, ours, messages, enums)
    return GrpcContract(services, messages, enums)

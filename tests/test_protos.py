"""The committed generated code in mesh/proto/ matches protos/*.proto."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("generate_protos",
                                                  ROOT / "scripts" / "generate_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current(tmp_path: Path):
    written = _generator().generate(tmp_path)
    assert written, "generator produced nothing"
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in written}
    committed_root = ROOT / "mesh" / "proto"
    committed = {p.relative_to(committed_root): p.read_bytes()
                 for p in (committed_root / "areamesh").rglob("*") if p.is_file()
                 and "__pycache__" not in p.parts}
    assert set(fresh) == set(committed), "generated file set differs: run " \
        "python scripts/generate_protos.py"
    stale = [str(k) for k in fresh if fresh[k] != committed[k]]
    assert not stale, f"stale generated code {stale}: run python scripts/generate_protos.py"


def test_generated_modules_import_under_mesh_proto():
    from mesh.proto.areamesh.v1 import peer_pb2_grpc, registry_pb2

    assert registry_pb2.DESCRIPTOR.services_by_name["RegistryService"]
    assert hasattr(peer_pb2_grpc, "PeerServiceStub")

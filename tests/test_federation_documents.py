"""Federation documents: export, add, list, remove with the CLI, and the bad documents that must
be refused with a clear error while nothing is stored."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from mesh.errors import InvalidRequest
from mesh.federation import FederationDocument
from mesh.files import read_secret

from .federation_fixtures import NamedMesh


@pytest.fixture
async def meshes(tmp_path: Path):
    hyogo = NamedMesh(tmp_path / "hyogo", "hyogo", "兵庫県")
    osaka = NamedMesh(tmp_path / "osaka", "osaka", "大阪府")
    await hyogo.init_registry()
    await osaka.init_registry()
    return hyogo, osaka


async def _export(mesh: NamedMesh, endpoint: str = "127.0.0.1:17700") -> Path:
    out = mesh.root / f"{mesh.mesh_id}.federation.json"
    rc, _o, err = await mesh.cli("registry", "federation", "export", "--data-dir",
                                 str(mesh.registry_dir), "--endpoint", endpoint, "--out", str(out))
    assert rc == 0, err
    return out


def _forged_ca_document(key, mesh_id: str, tmp: Path, *, name: str = "偽装") -> Path:
    """A well-formed, correctly signed document of mesh ``mesh_id`` whose CA has ``key``."""
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"areamesh root CA ({mesh_id})")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    doc = FederationDocument(
        mesh_id=mesh_id, name=name, registry_endpoint="127.0.0.1:17800",
        ca_certificates_pem=(cert.public_bytes(serialization.Encoding.PEM).decode(),),
        issued=now.isoformat())
    from cryptography.hazmat.primitives.asymmetric import ec
    sig = key.sign(doc.signed_bytes(), ec.ECDSA(hashes.SHA256()))
    path = tmp / f"{mesh_id}.forged.json"
    path.write_text(FederationDocument(**{**doc.__dict__, "signature":
                                          base64.b64encode(sig).decode()}).dumps())
    return path


async def test_export_add_list_remove_with_the_cli(meshes):
    hyogo, osaka = meshes
    rc, out, err = await hyogo.cli("registry", "federation", "id", "--data-dir",
                                   str(hyogo.registry_dir))
    assert rc == 0, err
    assert "mesh id: hyogo" in out and hyogo.ca().fingerprint in out
    doc = FederationDocument.parse((await _export(osaka)).read_bytes())
    assert doc.mesh_id == "osaka" and doc.fingerprints == [osaka.ca().fingerprint]
    assert doc.registry_endpoint == "127.0.0.1:17700"

    rc, out, err = await hyogo.add(await _export(osaka))
    assert rc == 0, err
    assert osaka.ca().fingerprint in out           # shown for the out-of-band check
    listed = await hyogo.federations()
    assert listed["osaka"]["status"] == "pending"   # the other side has not added us
    rc, out, err = await hyogo.cli("registry", "federation", "remove", "--data-dir",
                                   str(hyogo.registry_dir), "osaka", "--yes")
    assert rc == 0, err
    assert await hyogo.federations() == {}
    rc, out, err = await hyogo.cli("registry", "audit-log", "list", "--data-dir",
                                   str(hyogo.registry_dir), "--json")
    assert rc == 0, err
    actions = [json.loads(line)["action"] for line in out.splitlines()]
    assert actions[:2] == ["federation.remove", "federation.add"]


async def test_bad_signature_is_refused(meshes):
    hyogo, osaka = meshes
    path = await _export(osaka)
    doc = json.loads(path.read_text())
    doc["registry_endpoint"] = "127.0.0.1:9999"     # altered after signing
    path.write_text(json.dumps(doc))
    rc, _out, err = await hyogo.add(path)
    assert rc != 0
    assert "federation_signature_invalid" in err and "署名" in err
    doc = json.loads((await _export(osaka)).read_text())
    doc["signature"] = "not base64!"
    path.write_text(json.dumps(doc))
    rc, _out, err = await hyogo.add(path)
    assert rc != 0 and "federation_signature_invalid" in err
    assert await hyogo.federations() == {}


async def test_own_and_duplicate_mesh_ids_are_refused(meshes, tmp_path: Path):
    hyogo, osaka = meshes
    rc, _out, err = await hyogo.add(await _export(hyogo))
    assert rc != 0 and "federation_mesh_id_own" in err
    rc, _out, err = await hyogo.add(await _export(osaka))
    assert rc == 0, err
    rc, _out, err = await hyogo.add(await _export(osaka))
    assert rc != 0 and "federation_duplicate" in err
    # another mesh that picked the same id, with its own CA: still a duplicate
    other = NamedMesh(tmp_path / "osaka2", "osaka", "別の大阪")
    await other.init_registry()
    rc, _out, err = await hyogo.add(await _export(other))
    assert rc != 0 and "federation_duplicate" in err
    assert list(await hyogo.federations()) == ["osaka"]
    assert (await hyogo.federations())["osaka"]["fingerprints"] == [osaka.ca().fingerprint]
    rc, _out, err = await hyogo.cli("registry", "federation", "remove", "--data-dir",
                                    str(hyogo.registry_dir), "kyoto", "--yes")
    assert rc != 0 and "federation_unknown" in err


async def test_a_ca_of_another_federation_is_refused(meshes, tmp_path: Path):
    hyogo, osaka = meshes
    rc, _out, err = await hyogo.add(await _export(osaka))
    assert rc == 0, err
    osaka_key = serialization.load_pem_private_key(
        read_secret(osaka.registry_dir / "ca" / "ca.key"), None)
    # mesh "kyoto" presents a CA with osaka's key: the same CA under another mesh's name
    rc, _out, err = await hyogo.add(_forged_ca_document(osaka_key, "kyoto", tmp_path))
    assert rc != 0 and "federation_ca_conflict" in err
    # and one with this mesh's own CA key
    hyogo_key = serialization.load_pem_private_key(
        read_secret(hyogo.registry_dir / "ca" / "ca.key"), None)
    rc, _out, err = await hyogo.add(_forged_ca_document(hyogo_key, "nara", tmp_path))
    assert rc != 0 and "federation_ca_conflict" in err
    assert list(await hyogo.federations()) == ["osaka"]


def test_document_shape_errors(tmp_path: Path):
    cases = [b"not json", b'{"kind": "something/else"}', json.dumps({
        "kind": "areamesh.federation/v1", "mesh_id": "Bad Id", "name": "x",
        "ca_certificates_pem": [], "registry_endpoint": "h:1", "issued": "2026-01-01T00:00:00Z",
        "signature": ""}).encode(), b"{" * 70_000]
    codes = []
    for data in cases:
        with pytest.raises(InvalidRequest) as exc:
            FederationDocument.parse(data)
        assert exc.value.message_ja
        codes.append(exc.value.code)
    assert codes == ["federation_document_invalid", "federation_document_invalid",
                     "federation_mesh_id_invalid", "federation_document_invalid"]


async def test_a_ca_naming_another_mesh_is_refused(meshes, tmp_path: Path):
    hyogo, osaka = meshes
    doc = json.loads((await _export(osaka)).read_text())
    doc["mesh_id"] = "kyoto"     # osaka's CA says "osaka" in its name
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps(doc))
    rc, _out, err = await hyogo.add(path)
    assert rc != 0 and "federation_mesh_id_mismatch" in err


async def test_default_mesh_id_cannot_export(tmp_path: Path):
    plain = NamedMesh(tmp_path / "plain", "default", "既定")
    await plain.init_registry()
    rc, _out, err = await plain.cli("registry", "federation", "export", "--data-dir",
                                    str(plain.registry_dir), "--endpoint", "127.0.0.1:1")
    assert rc != 0 and "federation_mesh_id_default" in err

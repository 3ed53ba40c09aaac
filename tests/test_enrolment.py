"""Enrolment with join tokens: the happy path and every refusal the issue names."""

from __future__ import annotations

import asyncio
import stat
from datetime import timedelta

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from mesh.certs import identity_of, uri_sans
from mesh.ids import node_dns_name
from mesh.jointoken import JoinToken
from mesh.keystore import build_csr, generate_key
from mesh.proto.areamesh.v1 import registry_pb2

from .conftest import MESH_ID, MeshHarness

pytestmark = pytest.mark.integration


async def test_join_stores_key_and_certificate_naming_the_participant(running: MeshHarness):
    node_dir = await running.enrol("himeji", "282014")
    tls = node_dir / "tls"
    assert stat.S_IMODE((tls / "node.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((tls / "node.crt").read_bytes())
    assert uri_sans(cert) == ["urn:areamesh:org:282014:node:main"]
    dns = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert dns.get_values_for_type(x509.DNSName) == [node_dns_name("282014", "main", MESH_ID)]
    assert (tls / "ca.crt").read_bytes() == running.ca().ca_pem()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=29) < lifetime <= timedelta(days=30, minutes=5)  # default 30 days
    ident = identity_of(cert)
    assert ident and ident.participant_id == "282014" and ident.node_name == "main"


async def test_token_works_once(running: MeshHarness):
    token = await running.token("282014")
    rc, _, err = await running.join("a", token)
    assert rc == 0, err
    rc, _, err = await running.join("b", token, node="second")
    assert rc != 0
    assert "already used" in err and "使用済み" in err
    assert not (running.root / "b" / "tls" / "node.crt").exists()


async def test_expired_token_refused(running: MeshHarness):
    token = await running.token("282014", ttl="1s")
    await asyncio.sleep(1.2)  # the token's own clock: nothing to synchronise on
    rc, _, err = await running.join("a", token)
    assert rc != 0 and "expired" in err
    assert not (running.root / "a" / "tls" / "node.crt").exists()


async def test_token_for_unknown_participant_cannot_be_created(running: MeshHarness):
    rc, _, err = await running.cli("registry", "token", "create", "--data-dir",
                                   str(running.registry_dir), "--participant", "131016")
    assert rc != 0 and "unknown participant 131016" in err


async def test_unknown_token_refused(running: MeshHarness):
    real = JoinToken.parse(await running.token("282014"))
    forged = JoinToken("abcdefghij", real.secret, real.ca_fingerprint)
    rc, _, err = await running.join("a", str(forged))
    assert rc != 0 and "unknown" in err
    wrong_secret = JoinToken(real.token_id, "x" * 32, real.ca_fingerprint)
    rc, _, err = await running.join("a", str(wrong_secret))
    assert rc != 0 and "unknown" in err
    rc, _, err = await running.join("a", str(real))  # the real one was not burned
    assert rc == 0, err


async def test_token_from_another_registry_is_refused_before_sending_a_csr(
        running: MeshHarness, tmp_path):
    other = MeshHarness(tmp_path / "other")
    await other.init_registry()
    foreign = await other.token("282014")
    rc, _, err = await running.join("a", foreign)
    assert rc != 0
    assert "ca_fingerprint_mismatch" in err and "does not hold the CA pinned" in err
    assert not (running.root / "a" / "tls").exists()
    rc, out, _ = await running.cli("registry", "node", "list", "--data-dir",
                                   str(running.registry_dir))
    assert out.strip() == ""


async def test_malformed_token_text_refused(running: MeshHarness):
    rc, _, err = await running.join("a", "not-a-token")
    assert rc == 2 and "malformed join token" in err


def _enrol_request(token: JoinToken, csr: bytes, node: str = "main") -> registry_pb2.EnrolRequest:
    return registry_pb2.EnrolRequest(token_id=token.token_id, token_secret=token.secret,
                                     ca_fingerprint=token.ca_fingerprint, node_name=node,
                                     csr_pem=csr)


async def _enrol_directly(h: MeshHarness, request) -> registry_pb2.EnrolResponse:
    stub = h.registry_stub(grpc.ssl_channel_credentials(h.ca().ca_pem()), enrol=True)
    return await stub.Enrol(request, timeout=10)


async def test_malformed_csr_refused_and_token_kept(running: MeshHarness):
    token = JoinToken.parse(await running.token("282014"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _enrol_directly(running, _enrol_request(token, b"-----BEGIN CERTIFICATE REQUEST"
                                                             b"-----\nAAAA\n-----END CERTIFICATE "
                                                             b"REQUEST-----\n"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed_csr" in err.value.details()
    reply = await _enrol_directly(running, _enrol_request(token, build_csr(generate_key(),
                                                                           node_name="main")))
    assert reply.participant_id == "282014"


async def test_csr_claiming_another_participant_refused(running: MeshHarness):
    token = JoinToken.parse(await running.token("282014"))
    key = generate_key()
    claims_osaka = build_csr(key, node_name="main", participant_id="270008",
                             uri="urn:areamesh:org:270008:node:main")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _enrol_directly(running, _enrol_request(token, claims_osaka))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "csr_identity_mismatch" in err.value.details()
    only_uri = (x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "main")]))
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                    "urn:areamesh:org:270008:node:main")]), critical=False)
                .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _enrol_directly(running, _enrol_request(token, only_uri))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    _rc, out, _ = await running.cli("registry", "node", "list", "--data-dir",
                                   str(running.registry_dir))
    assert out.strip() == ""


async def test_enrol_with_wrong_pinned_fingerprint_refused_by_registry(running: MeshHarness):
    token = JoinToken.parse(await running.token("282014"))
    wrong = JoinToken(token.token_id, token.secret, "sha256:" + "00" * 32)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _enrol_directly(running, _enrol_request(wrong, build_csr(generate_key(),
                                                                       node_name="main")))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "ca_fingerprint_mismatch" in err.value.details()


async def test_invalid_node_name_refused(running: MeshHarness):
    rc, _, err = await running.join("a", await running.token("282014"), node="Bad_Name")
    assert rc == 2 and "node name" in err

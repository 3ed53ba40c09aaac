"""Tests for the mesh CA (registry/ca/authority.py), the node key store (mesh/keystore.py)
and certificate reading (mesh/certs.py)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from mesh.certs import (
    fingerprint,
    identity_from_pem,
    identity_of,
    load_pem_bundle,
    remaining_fraction,
    to_pem,
    uri_sans,
)
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.ids import node_identity_uri
from mesh.keystore import NodeKeyStore, build_csr, generate_key, key_to_pem, load_key
from registry.ca.authority import MAX_CSR_BYTES, CertificateAuthority, RevokedEntry

PID = "282014"
NODE = "main"
DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("mesh") / "ca", mesh_id="test",
                                       name="テスト運営組織")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("other") / "ca", mesh_id="other",
                                       name="別の運営組織")


def csr_pem(builder: x509.CertificateSigningRequestBuilder, key=None) -> bytes:
    key = key or generate_key()
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(PEM)


def subject(*, cn: str | None = NODE, o: str | None = PID) -> x509.Name:
    attrs = []
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    if o is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    return x509.Name(attrs)


def der_to_pem(der: bytes) -> bytes:
    return (b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(der)
            + b"-----END CERTIFICATE REQUEST-----\n")


def check(ca: CertificateAuthority, pem: bytes) -> x509.CertificateSigningRequest:
    return ca.check_csr(pem, participant_id=PID, node_name=NODE)


def issue(ca: CertificateAuthority, pem: bytes, lifetime: timedelta = timedelta(days=30),
          **kw) -> x509.Certificate:
    return ca.issue_node_certificate(check(ca, pem), participant_id=PID, node_name=NODE,
                                     lifetime=lifetime, **kw)


# ---- CA creation ------------------------------------------------------------------------------


def test_create_writes_key_0600_and_ca_certificate(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca = CertificateAuthority.create(ca_dir, mesh_id="test", name="テスト運営組織")
    assert mode_of(ca_dir / "ca.key") == 0o600
    assert mode_of(ca_dir / "registry.key") == 0o600
    assert mode_of(ca_dir) == 0o700
    assert sorted(p.name for p in ca_dir.iterdir()) == ["ca.crt", "ca.key", "registry.crt",
                                                        "registry.key"]
    cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    assert cert == ca.certificate
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca is True
    assert bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)  # self-signed
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == \
        "テスト運営組織"
    assert "test" in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cert.not_valid_after_utc - datetime.now(UTC) > timedelta(days=3000)
    # the private key on disk belongs to the certificate
    key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    assert key.public_key() == cert.public_key()


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    first = CertificateAuthority.create(ca_dir, mesh_id="test", name="テスト運営組織")
    key_before = (ca_dir / "ca.key").read_bytes()
    crt_before = (ca_dir / "ca.crt").read_bytes()
    with pytest.raises(FileExistsError, match=r"ca\.key"):
        CertificateAuthority.create(ca_dir, mesh_id="test", name="別名")
    assert (ca_dir / "ca.key").read_bytes() == key_before
    assert (ca_dir / "ca.crt").read_bytes() == crt_before
    assert CertificateAuthority(ca_dir, "test").fingerprint == first.fingerprint


def test_reopen_refuses_world_readable_key(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    CertificateAuthority.create(ca_dir, mesh_id="test", name="テスト運営組織")
    os.chmod(ca_dir / "ca.key", 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        CertificateAuthority(ca_dir, "test")


def test_fingerprint_format(ca: CertificateAuthority) -> None:
    fp = ca.fingerprint
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", fp)
    assert fp == "sha256:" + hashlib.sha256(ca.certificate.public_bytes(DER)).hexdigest()
    assert fp == fingerprint(ca.certificate)
    assert ca.ca_pem() == to_pem(ca.certificate)


def test_fingerprints_differ_between_cas(ca: CertificateAuthority,
                                         other_ca: CertificateAuthority) -> None:
    assert ca.fingerprint != other_ca.fingerprint


def test_registry_certificate(ca: CertificateAuthority) -> None:
    crt_path = ca.ca_dir / "registry.crt"
    cert = x509.load_pem_x509_certificate(crt_path.read_bytes())
    cert.verify_directly_issued_by(ca.certificate)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "registry.test.areamesh.invalid" in san.get_values_for_type(x509.DNSName)
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:areamesh:mesh:test:registry"]
    assert identity_of(cert) is None  # the registry is not a node
    before = crt_path.read_bytes()
    ca.ensure_registry_certificate()  # still valid for long: not reissued
    assert crt_path.read_bytes() == before


def test_registry_server_config_is_the_same_object_until_its_files_or_roots_change(
        tmp_path: Path) -> None:
    """gRPC asks on every handshake; the same object tells it to keep its TLS context. A
    reissued registry certificate, or other federated roots, gives a new one at once."""
    ca = CertificateAuthority.create(tmp_path / "ca", mesh_id="test", name="テスト運営組織")
    first = ca.registry_server_config()
    assert ca.registry_server_config() is first
    federated = ca.registry_server_config(b"-----BEGIN CERTIFICATE-----\nfederated\n")
    assert federated is not first
    assert ca.registry_server_config() is first          # each port's roots kept apart
    (ca.ca_dir / "registry.crt").unlink()
    ca.ensure_registry_certificate()                      # reissued: a new key and certificate
    renewed = ca.registry_server_config()
    assert renewed is not first
    assert ca.registry_server_config() is renewed


# ---- node certificates -------------------------------------------------------------------------


def test_keystore_csr_is_accepted_and_issued(ca: CertificateAuthority, tmp_path: Path) -> None:
    ks = NodeKeyStore(tmp_path / "tls")
    pem = ks.new_csr(node_name=NODE, participant_id=PID)
    lifetime = timedelta(days=30)
    start = datetime.now(UTC).replace(microsecond=0)
    cert = issue(ca, pem, lifetime)
    end = datetime.now(UTC)

    cert.verify_directly_issued_by(ca.certificate)
    assert cert.issuer == ca.certificate.subject
    assert cert.public_key() == x509.load_pem_x509_csr(pem).public_key()

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:areamesh:org:282014:node:main"]
    assert san.get_values_for_type(x509.DNSName) == ["main.282014.test.areamesh.invalid"]
    assert san.get_values_for_type(x509.IPAddress) == []

    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign and not ku.crl_sign
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest

    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == PID
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NODE

    # lifetime: ends `lifetime` after issuance (times in certificates have whole seconds)
    assert start + lifetime - timedelta(seconds=1) <= cert.not_valid_after_utc <= end + lifetime
    # starts a little in the past to absorb clock skew, never in the future
    assert cert.not_valid_before_utc <= start
    assert start - cert.not_valid_before_utc <= timedelta(minutes=10)


def test_lifetime_with_explicit_not_before(ca: CertificateAuthority) -> None:
    not_before = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    lifetime = timedelta(hours=36)
    cert = issue(ca, build_csr(generate_key(), node_name=NODE), lifetime, not_before=not_before)
    assert cert.not_valid_before_utc == not_before
    assert cert.not_valid_after_utc == not_before + lifetime
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == lifetime


@pytest.mark.parametrize("lifetime", [timedelta(hours=1), timedelta(days=1), timedelta(days=397)])
def test_lifetime_as_requested(ca: CertificateAuthority, lifetime: timedelta) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    cert = issue(ca, build_csr(generate_key(), node_name=NODE), lifetime)
    after = datetime.now(UTC)
    assert before + lifetime <= cert.not_valid_after_utc + timedelta(seconds=1)
    assert cert.not_valid_after_utc <= after + lifetime


def test_identity_of_node_certificate(ca: CertificateAuthority) -> None:
    cert = issue(ca, build_csr(generate_key(), node_name=NODE, participant_id=PID))
    ident = identity_of(cert)
    assert ident is not None
    assert ident.participant_id == PID
    assert ident.node_name == NODE
    assert ident.uri == "urn:areamesh:org:282014:node:main"
    assert str(ident) == ident.uri
    assert ident.serial == cert.serial_number
    assert ident.serial_hex == format(cert.serial_number, "x")
    assert ident.not_after == cert.not_valid_after_utc
    assert ident.issuer == ca.certificate.subject.rfc4514_string()
    assert identity_from_pem(to_pem(cert)) == ident
    assert uri_sans(cert) == [ident.uri]


def test_identity_of_corporate_participant(ca: CertificateAuthority) -> None:
    pid = "7000012050002"
    pem = build_csr(generate_key(), node_name="node-1", participant_id=pid,
                    uri=node_identity_uri(pid, "node-1"))
    csr = ca.check_csr(pem, participant_id=pid, node_name="node-1")
    cert = ca.issue_node_certificate(csr, participant_id=pid, node_name="node-1",
                                     lifetime=timedelta(days=1))
    ident = identity_of(cert)
    assert ident is not None
    assert (ident.participant_id, ident.node_name) == (pid, "node-1")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node-1.7000012050002.test.areamesh.invalid"]


def test_identity_of_certificate_without_node_uri(ca: CertificateAuthority) -> None:
    assert identity_of(ca.certificate) is None
    assert uri_sans(ca.certificate) == []


def test_registry_decides_names_not_the_csr(ca: CertificateAuthority) -> None:
    """A CSR with only a CN (no O, no SAN) still gets the full registry-chosen names."""
    cert = issue(ca, csr_pem(x509.CertificateSigningRequestBuilder()
                             .subject_name(subject(o=None))))
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == PID
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NODE
    assert uri_sans(cert) == [node_identity_uri(PID, NODE)]


def test_csr_with_empty_subject_is_accepted(ca: CertificateAuthority) -> None:
    csr = check(ca, csr_pem(x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))))
    assert len(csr.subject) == 0


def test_csr_with_matching_uri_is_accepted(ca: CertificateAuthority) -> None:
    pem = build_csr(generate_key(), node_name=NODE, participant_id=PID,
                    uri=node_identity_uri(PID, NODE))
    assert check(ca, pem).subject == x509.load_pem_x509_csr(pem).subject


def test_ed25519_csr_is_accepted(ca: CertificateAuthority) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cert = issue(ca, csr_pem(x509.CertificateSigningRequestBuilder().subject_name(subject()),
                             key))
    assert isinstance(cert.public_key(), ed25519.Ed25519PublicKey)
    cert.verify_directly_issued_by(ca.certificate)


def test_serials_are_unique(ca: CertificateAuthority) -> None:
    pem = build_csr(generate_key(), node_name=NODE)
    serials = {issue(ca, pem).serial_number for _ in range(5)}
    assert len(serials) == 5


def test_node_certificate_not_issued_by_other_ca(ca: CertificateAuthority,
                                                 other_ca: CertificateAuthority) -> None:
    cert = issue(ca, build_csr(generate_key(), node_name=NODE))
    with pytest.raises((ValueError, TypeError)):
        cert.verify_directly_issued_by(other_ca.certificate)


# ---- bad CSRs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"",
    b"garbage",
    os.urandom(512),
    b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64!!\n-----END CERTIFICATE REQUEST-----\n",
])
def test_garbage_csr_is_malformed(ca: CertificateAuthority, data: bytes) -> None:
    with pytest.raises(InvalidRequest) as ei:
        check(ca, data)
    assert ei.value.code == "malformed_csr"
    assert ei.value.message_ja


def test_truncated_pem_is_malformed(ca: CertificateAuthority) -> None:
    pem = build_csr(generate_key(), node_name=NODE, participant_id=PID)
    for cut in (len(pem) // 2, len(pem) - 30, 40):
        with pytest.raises(InvalidRequest) as ei:
            check(ca, pem[:cut])
        assert ei.value.code == "malformed_csr"


def test_certificate_instead_of_csr_is_malformed(ca: CertificateAuthority) -> None:
    with pytest.raises(InvalidRequest) as ei:
        check(ca, ca.ca_pem())
    assert ei.value.code == "malformed_csr"


def test_oversized_csr(ca: CertificateAuthority) -> None:
    pem = build_csr(generate_key(), node_name=NODE, participant_id=PID)
    check(ca, pem)  # the CSR itself is fine...
    padded = pem + b"\n" * (MAX_CSR_BYTES + 1 - len(pem))
    assert len(padded) == MAX_CSR_BYTES + 1 == 16 * 1024 + 1
    with pytest.raises(InvalidRequest) as ei:  # ...but too big
        check(ca, padded)
    assert ei.value.code == "malformed_csr"
    assert str(MAX_CSR_BYTES) in ei.value.message
    with pytest.raises(InvalidRequest):
        check(ca, b"A" * (100 * 1024))


def test_tampered_signature(ca: CertificateAuthority) -> None:
    key = generate_key()
    der = x509.load_pem_x509_csr(build_csr(key, node_name=NODE, participant_id=PID)
                                 ).public_bytes(DER)
    check(ca, der_to_pem(der))  # the re-encoded original is accepted
    for offset in (1, 3, 10, 20):  # bytes inside the ECDSA signature at the end of the DER
        tampered = bytearray(der)
        tampered[-offset] ^= 0x01
        with pytest.raises(InvalidRequest) as ei:
            check(ca, der_to_pem(bytes(tampered)))
        assert ei.value.code == "malformed_csr"
        assert "signature" in ei.value.message


def test_csr_signed_by_another_key(ca: CertificateAuthority) -> None:
    """Take a valid CSR's body and graft on the signature of another CSR with the same body."""
    csr1 = x509.load_pem_x509_csr(build_csr(generate_key(), node_name=NODE))
    sig1 = csr1.signature
    for _ in range(100):  # ECDSA signatures vary in length; find one as long as sig1
        csr2 = x509.load_pem_x509_csr(build_csr(generate_key(), node_name=NODE))
        if len(csr2.signature) == len(sig1):
            break
    sig2 = csr2.signature
    assert len(sig2) == len(sig1)
    assert sig1 != sig2
    d1 = csr1.public_bytes(DER)
    assert d1.endswith(sig1) and csr2.public_bytes(DER).endswith(sig2)
    grafted = d1[: -len(sig1)] + sig2  # same length: every DER length stays valid
    assert x509.load_der_x509_csr(grafted).signature == sig2
    with pytest.raises(InvalidRequest) as ei:
        check(ca, der_to_pem(grafted))
    assert ei.value.code == "malformed_csr"


def test_rsa_key_is_rejected(ca: CertificateAuthority) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = build_csr(key, node_name=NODE, participant_id=PID)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest) as ei:
        check(ca, pem)
    assert ei.value.code == "malformed_csr"
    assert "P-256" in ei.value.message


def test_p384_key_is_rejected(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(InvalidRequest) as ei:
        check(ca, build_csr(key, node_name=NODE))
    assert ei.value.code == "malformed_csr"


@pytest.mark.parametrize("name", [subject(o="270008"), subject(o="7000012050002"),
                                  subject(cn=None, o="270008")])
def test_csr_claiming_other_participant(ca: CertificateAuthority, name: x509.Name) -> None:
    with pytest.raises(PermissionDenied) as ei:
        check(ca, csr_pem(x509.CertificateSigningRequestBuilder().subject_name(name)))
    assert ei.value.code == "csr_identity_mismatch"
    assert "270008" in ei.value.message or "7000012050002" in ei.value.message
    assert ei.value.message_ja


def test_keystore_csr_for_other_participant(ca: CertificateAuthority, tmp_path: Path) -> None:
    pem = NodeKeyStore(tmp_path).new_csr(node_name=NODE, participant_id="270008")
    with pytest.raises(PermissionDenied) as ei:
        check(ca, pem)
    assert ei.value.code == "csr_identity_mismatch"


@pytest.mark.parametrize("cn", ["other", "main2", "Main", ""])
def test_csr_claiming_other_node(ca: CertificateAuthority, cn: str) -> None:
    builder = x509.CertificateSigningRequestBuilder()
    if cn:
        builder = builder.subject_name(subject(cn=cn))
        pem = csr_pem(builder)
    else:
        pem = csr_pem(builder.subject_name(x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, "x"),
            x509.NameAttribute(NameOID.COMMON_NAME, NODE)])))  # a second CN is checked too
    with pytest.raises(PermissionDenied) as ei:
        check(ca, pem)
    assert ei.value.code == "csr_identity_mismatch"
    assert ei.value.message_ja


@pytest.mark.parametrize("uri", [
    node_identity_uri("270008", NODE),
    node_identity_uri(PID, "other"),
    node_identity_uri("7000012050002", NODE),
    "urn:areamesh:mesh:test:registry",
    "https://example.org/",
])
def test_csr_uri_naming_another_identity(ca: CertificateAuthority, uri: str) -> None:
    pem = build_csr(generate_key(), node_name=NODE, participant_id=PID, uri=uri)
    with pytest.raises(PermissionDenied) as ei:
        check(ca, pem)
    assert ei.value.code == "csr_identity_mismatch"
    assert uri in ei.value.message


def test_csr_with_a_wrong_uri_among_right_ones(ca: CertificateAuthority) -> None:
    pem = csr_pem(x509.CertificateSigningRequestBuilder().subject_name(subject()).add_extension(
        x509.SubjectAlternativeName([
            x509.UniformResourceIdentifier(node_identity_uri(PID, NODE)),
            x509.UniformResourceIdentifier(node_identity_uri("270008", NODE))]),
        critical=False))
    with pytest.raises(PermissionDenied) as ei:
        check(ca, pem)
    assert ei.value.code == "csr_identity_mismatch"


@pytest.mark.parametrize("names", [
    [x509.DNSName("main.282014.test.areamesh.invalid")],
    [x509.DNSName("evil.example")],
    [x509.UniformResourceIdentifier(node_identity_uri(PID, NODE)), x509.DNSName("localhost")],
    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
])
def test_csr_requesting_dns_or_ip_names(ca: CertificateAuthority,
                                        names: list[x509.GeneralName]) -> None:
    pem = csr_pem(x509.CertificateSigningRequestBuilder().subject_name(subject())
                  .add_extension(x509.SubjectAlternativeName(names), critical=False))
    with pytest.raises(PermissionDenied) as ei:
        check(ca, pem)
    assert ei.value.code == "csr_identity_mismatch"
    assert "DNS or IP" in ei.value.message


def test_csr_with_malformed_san_extension(ca: CertificateAuthority) -> None:
    pem = csr_pem(x509.CertificateSigningRequestBuilder().subject_name(subject()).add_extension(
        x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x03\xff\xff"),
        critical=False))
    with pytest.raises(InvalidRequest) as ei:
        check(ca, pem)
    assert ei.value.code == "malformed_csr"


# ---- CRLs --------------------------------------------------------------------------------------


def test_sign_crl(ca: CertificateAuthority, other_ca: CertificateAuthority) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    revoked = [RevokedEntry(serial=0x1234, revoked_at=now - timedelta(hours=1)),
               RevokedEntry(serial=issue(ca, build_csr(generate_key(), node_name=NODE))
                            .serial_number, revoked_at=now)]
    crl = ca.sign_crl(revoked, number=42, this_update=now, next_update=now + timedelta(hours=1))

    assert crl.is_signature_valid(ca.certificate.public_key())
    assert not crl.is_signature_valid(other_ca.certificate.public_key())
    assert crl.issuer == ca.certificate.subject
    assert crl.last_update_utc == now
    assert crl.next_update_utc == now + timedelta(hours=1)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    assert len(crl) == 2
    assert {r.serial_number for r in crl} == {e.serial for e in revoked}
    for entry in revoked:
        found = crl.get_revoked_certificate_by_serial_number(entry.serial)
        assert found is not None
        assert found.revocation_date_utc == entry.revoked_at
    assert crl.get_revoked_certificate_by_serial_number(0x9999) is None

    # survives a DER round trip, as it travels in heartbeats
    again = x509.load_der_x509_crl(crl.public_bytes(DER))
    assert again.is_signature_valid(ca.certificate.public_key())
    assert {r.serial_number for r in again} == {0x1234, revoked[1].serial}


def test_sign_empty_crl(ca: CertificateAuthority) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    crl = ca.sign_crl([], number=1, this_update=now, next_update=now + timedelta(minutes=5))
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert len(crl) == 0
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1


def test_tampered_crl_does_not_verify(ca: CertificateAuthority) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    der = bytearray(ca.sign_crl([RevokedEntry(7, now)], number=3, this_update=now,
                                next_update=now + timedelta(hours=1)).public_bytes(DER))
    der[-1] ^= 0x01
    crl = x509.load_der_x509_crl(bytes(der))
    assert not crl.is_signature_valid(ca.certificate.public_key())


# ---- the node key store ------------------------------------------------------------------------


def test_keystore_install(ca: CertificateAuthority, tmp_path: Path) -> None:
    tls = tmp_path / "data" / "tls"
    ks = NodeKeyStore(tls)
    assert not ks.exists()
    pem = ks.new_csr(node_name=NODE, participant_id=PID, uri=node_identity_uri(PID, NODE))
    csr = x509.load_pem_x509_csr(pem)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NODE
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == PID
    assert not tls.exists()  # the key stays in memory until install

    cert = issue(ca, pem)
    ks.install(to_pem(cert), ca.ca_pem())
    assert ks.exists()
    assert mode_of(ks.key_path) == 0o600
    assert mode_of(tls) == 0o700
    assert ks.certificate() == cert
    assert ks.trust_bundle_pem() == ca.ca_pem()
    assert load_key(ks.key_path).public_key() == cert.public_key()
    assert load_pem_bundle(ks.trust_bundle_pem()) == [ca.certificate]
    # the pending key is used up
    with pytest.raises(RuntimeError):
        ks.install(to_pem(cert), ca.ca_pem())


def test_keystore_install_without_csr(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert = issue(ca, build_csr(generate_key(), node_name=NODE))
    with pytest.raises(RuntimeError, match="new_csr"):
        NodeKeyStore(tmp_path / "tls").install(to_pem(cert), ca.ca_pem())
    assert not (tmp_path / "tls").exists()


def test_keystore_refuses_certificate_for_another_key(ca: CertificateAuthority,
                                                      tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    ks = NodeKeyStore(tls)
    ks.new_csr(node_name=NODE, participant_id=PID)
    foreign = issue(ca, build_csr(generate_key(), node_name=NODE, participant_id=PID))
    with pytest.raises(ValueError, match="does not match"):
        ks.install(to_pem(foreign), ca.ca_pem())
    assert not ks.key_path.exists()
    assert not ks.cert_path.exists()
    assert not ks.exists()


def test_keystore_only_the_latest_csr_key_installs(ca: CertificateAuthority,
                                                   tmp_path: Path) -> None:
    ks = NodeKeyStore(tmp_path / "tls")
    first = ks.new_csr(node_name=NODE)
    second = ks.new_csr(node_name=NODE)
    with pytest.raises(ValueError):
        ks.install(to_pem(issue(ca, first)), ca.ca_pem())
    cert = issue(ca, second)
    ks.install(to_pem(cert), ca.ca_pem())
    assert load_key(ks.key_path).public_key() == cert.public_key()


def test_keystore_refuses_rsa_certificate(ca: CertificateAuthority, tmp_path: Path) -> None:
    ks = NodeKeyStore(tmp_path / "tls")
    ks.new_csr(node_name=NODE)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = x509.load_pem_x509_csr(build_csr(rsa_key, node_name=NODE))  # type: ignore[arg-type]
    cert = ca.issue_node_certificate(csr, participant_id=PID, node_name=NODE,
                                     lifetime=timedelta(days=1))  # bypasses check_csr
    with pytest.raises(ValueError, match="does not match"):
        ks.install(to_pem(cert), ca.ca_pem())
    assert not ks.key_path.exists()


def test_keystore_refuses_ed25519_certificate(ca: CertificateAuthority, tmp_path: Path) -> None:
    ks = NodeKeyStore(tmp_path / "tls")
    ks.new_csr(node_name=NODE)
    ed_pem = csr_pem(x509.CertificateSigningRequestBuilder().subject_name(subject()),
                     ed25519.Ed25519PrivateKey.generate())
    cert = issue(ca, ed_pem)
    with pytest.raises(ValueError, match="does not match"):
        ks.install(to_pem(cert), ca.ca_pem())


def test_load_key_refuses_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(key_to_pem(generate_key()))
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_key(path)
    os.chmod(path, 0o600)
    assert isinstance(load_key(path), ec.EllipticCurvePrivateKey)


def test_build_csr_contents() -> None:
    key = generate_key()
    uri = node_identity_uri(PID, NODE)
    csr = x509.load_pem_x509_csr(build_csr(key, node_name=NODE, participant_id=PID, uri=uri))
    assert csr.is_signature_valid
    assert csr.public_key() == key.public_key()
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [uri]
    bare = x509.load_pem_x509_csr(build_csr(key, node_name=NODE))
    assert bare.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) == []
    assert len(bare.extensions) == 0


# ---- certificate helpers -----------------------------------------------------------------------


def test_load_pem_bundle(ca: CertificateAuthority, other_ca: CertificateAuthority) -> None:
    assert load_pem_bundle(ca.ca_pem() + other_ca.ca_pem()) == [ca.certificate,
                                                                 other_ca.certificate]
    with pytest.raises(ValueError):
        load_pem_bundle(b"")
    with pytest.raises(ValueError):
        load_pem_bundle(b"garbage")


def test_remaining_fraction(ca: CertificateAuthority) -> None:
    nb = datetime(2030, 1, 1, tzinfo=UTC)
    cert = issue(ca, build_csr(generate_key(), node_name=NODE), timedelta(days=10),
                 not_before=nb)
    assert remaining_fraction(cert, nb) == 1.0
    assert remaining_fraction(cert, nb + timedelta(days=5)) == pytest.approx(0.5)
    assert remaining_fraction(cert, nb + timedelta(days=20)) == 0.0
    assert remaining_fraction(cert, nb - timedelta(days=1)) == 1.0

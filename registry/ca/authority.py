"""The mesh root CA. Only this module reads the CA private key (``ca/ca.key``, mode 0600).

Files in ``DATA_DIR/ca/``: ``ca.key`` (0600), ``ca.crt``, ``registry.key`` (0600) and
``registry.crt`` (the registry's own TLS server/client certificate, signed by the CA).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mesh.certs import fingerprint, to_pem
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.files import atomic_write, read_secret, write_secret
from mesh.ids import node_dns_name, node_identity_uri, registry_dns_name
from mesh.keystore import generate_key, key_to_pem

log = logging.getLogger("areamesh.registry.ca")

CA_LIFETIME = timedelta(days=3650)
REGISTRY_CERT_LIFETIME = timedelta(days=365)
CLOCK_SKEW = timedelta(minutes=5)
MAX_CSR_BYTES = 16 * 1024


@dataclass(frozen=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime


class CertificateAuthority:
    """Issues node certificates and signs revocation lists for one mesh."""

    def __init__(self, ca_dir: Path, mesh_id: str) -> None:
        self.ca_dir = ca_dir
        self.mesh_id = mesh_id
        self._key = serialization.load_pem_private_key(read_secret(ca_dir / "ca.key"), None)
        self.certificate = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
        # extra roots -> (the files' bytes, the configuration made of them), see below
        self._server_configs: dict[bytes, tuple[tuple[bytes, bytes, bytes],
                                                grpc.ServerCertificateConfiguration]] = {}

    # ---- creation -------------------------------------------------------------------------
    @classmethod
    def create(cls, ca_dir: Path, *, mesh_id: str, name: str) -> CertificateAuthority:
        """Create the root key and certificate; refuses to overwrite an existing CA."""
        if (ca_dir / "ca.key").exists():
            raise FileExistsError(f"{ca_dir / 'ca.key'} exists: this data dir already has a CA")
        ca_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = generate_key()
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"areamesh root CA ({mesh_id})"),
        ])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + CA_LIFETIME)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        write_secret(ca_dir / "ca.key", key_to_pem(key))
        atomic_write(ca_dir / "ca.crt", to_pem(cert))
        ca = cls(ca_dir, mesh_id)
        ca.ensure_registry_certificate()
        log.info("created mesh CA %s for mesh %s", fingerprint(cert), mesh_id)
        return ca

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)

    def ca_pem(self) -> bytes:
        return to_pem(self.certificate)

    # ---- the registry's own certificate ----------------------------------------------------
    def ensure_registry_certificate(self) -> None:
        """(Re)issue the registry's TLS certificate when missing or within 30 days of expiry."""
        crt = self.ca_dir / "registry.crt"
        if crt.exists():
            cert = x509.load_pem_x509_certificate(crt.read_bytes())
            if cert.not_valid_after_utc - datetime.now(UTC) > timedelta(days=30):
                return
        key = generate_key()
        uri = f"urn:areamesh:mesh:{self.mesh_id}:registry"
        names = [x509.DNSName(registry_dns_name(self.mesh_id)), x509.DNSName("localhost"),
                 x509.UniformResourceIdentifier(uri)]
        cert = self._issue(key.public_key(), x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, f"areamesh registry ({self.mesh_id})")]),
            names, datetime.now(UTC) + REGISTRY_CERT_LIFETIME)
        write_secret(self.ca_dir / "registry.key", key_to_pem(key))
        atomic_write(crt, to_pem(cert))

    def registry_server_config(self, extra_roots: bytes = b""
                               ) -> grpc.ServerCertificateConfiguration:
        """Serve the registry leaf followed by the CA, so a joining node can find the CA it
        pinned; trust client certificates from the mesh roots (and ``extra_roots``: federated
        meshes' CAs, whose registries call this one; the interceptor tells them apart).

        gRPC asks on every handshake; while the files and roots are unchanged the answer is the
        same object, so ``dynamic_server_credentials`` tells gRPC to keep its TLS context. A new
        one per connection is not only slow: gRPC frees the old context while concurrent
        handshakes still use it (grpc/grpc#36693), and a flood of handshakes crashed the
        registry (tests/security/test_handshake_flood.py)."""
        ca_pem = self.ca_pem()
        key = read_secret(self.ca_dir / "registry.key")
        chain = (self.ca_dir / "registry.crt").read_bytes() + ca_pem
        roots = ca_pem + extra_roots
        material = (key, chain, roots)
        cached = self._server_configs.get(extra_roots)
        if cached is not None and cached[0] == material:
            return cached[1]               # the same object: gRPC keeps its TLS context
        config = grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)
        if len(self._server_configs) >= 4:           # federations changed: drop the old roots
            self._server_configs.clear()
        self._server_configs[extra_roots] = (material, config)
        return config

    # ---- node certificates -----------------------------------------------------------------
    def check_csr(self, csr_pem: bytes, *, participant_id: str, node_name: str
                  ) -> x509.CertificateSigningRequest:
        """Parse and check a CSR. Every name it claims must be this participant's node.

        Raises ``InvalidRequest`` for a malformed CSR and ``PermissionDenied`` for one that
        claims another identity.
        """
        if len(csr_pem) > MAX_CSR_BYTES:
            raise InvalidRequest(f"CSR is {len(csr_pem)} bytes; the limit is {MAX_CSR_BYTES}",
                                 code="malformed_csr")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise InvalidRequest(f"CSR is not a PEM certificate signing request: {exc}",
                                 message_ja="CSRの形式が正しくありません",
                                 code="malformed_csr") from None
        try:
            valid = csr.is_signature_valid
        except (InvalidSignature, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidRequest("CSR signature does not verify with its own public key",
                                 message_ja="CSRの署名を検証できません", code="malformed_csr")
        pub = csr.public_key()
        if not ((isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1")
                or isinstance(pub, ed25519.Ed25519PublicKey)):
            raise InvalidRequest("CSR key must be ECDSA P-256 or Ed25519", code="malformed_csr")
        expected_uri = node_identity_uri(participant_id, node_name)
        for attr in csr.subject:
            if attr.oid == NameOID.ORGANIZATION_NAME and attr.value != participant_id:
                raise PermissionDenied(
                    f"CSR subject claims organisation {attr.value!r}, but this token/certificate "
                    f"belongs to participant {participant_id}",
                    message_ja="CSRが別の参加者を名乗っています", code="csr_identity_mismatch")
            if attr.oid == NameOID.COMMON_NAME and attr.value != node_name:
                raise PermissionDenied(
                    f"CSR subject claims node {attr.value!r}, expected {node_name!r}",
                    message_ja="CSRが別のノードを名乗っています", code="csr_identity_mismatch")
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
        except (ValueError, x509.DuplicateExtension) as exc:
            raise InvalidRequest(f"CSR extensions cannot be parsed: {exc}",
                                 message_ja="CSRの拡張領域を解析できません",
                                 code="malformed_csr") from None
        if san is not None:
            for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
                if uri != expected_uri:
                    raise PermissionDenied(
                        f"CSR claims identity {uri}, expected {expected_uri}",
                        message_ja="CSRが別の参加者の識別子を名乗っています",
                        code="csr_identity_mismatch")
            if san.get_values_for_type(x509.DNSName) or san.get_values_for_type(x509.IPAddress):
                raise PermissionDenied("CSR may not request DNS or IP names; the registry "
                                       "assigns them", code="csr_identity_mismatch")
        return csr

    def issue_node_certificate(self, csr: x509.CertificateSigningRequest, *,
                               participant_id: str, node_name: str, lifetime: timedelta,
                               not_before: datetime | None = None) -> x509.Certificate:
        """Sign a node certificate. The registry decides every name in it, not the CSR."""
        uri = node_identity_uri(participant_id, node_name)
        # Backdate for clock skew, but never by more than a tenth of a (short) lifetime.
        start = not_before or datetime.now(UTC) - min(CLOCK_SKEW, lifetime / 10)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, participant_id),
                             x509.NameAttribute(NameOID.COMMON_NAME, node_name)])
        names = [x509.UniformResourceIdentifier(uri),
                 x509.DNSName(node_dns_name(participant_id, node_name, self.mesh_id))]
        end = (not_before + lifetime) if not_before else datetime.now(UTC) + lifetime
        return self._issue(csr.public_key(), subject, names, end, not_before=start)

    def _issue(self, public_key, subject: x509.Name, names: list[x509.GeneralName],
               not_after: datetime, *, not_before: datetime | None = None) -> x509.Certificate:
        ca_pub = self.certificate.public_key()
        builder = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(self.certificate.subject)
                   .public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or datetime.now(UTC) - CLOCK_SKEW)
                   .not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=True, key_cert_sign=False, crl_sign=False,
                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                       key_agreement=False, encipher_only=False, decipher_only=False),
                       critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                         ExtendedKeyUsageOID.CLIENT_AUTH]),
                                  critical=False)
                   .add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_pub),
                                  critical=False))
        return builder.sign(self._key, hashes.SHA256())

    def sign_document(self, data: bytes) -> bytes:
        """A signature with the CA key over ``data`` (the mesh's federation document; DER ECDSA
        P-256/SHA-256, or Ed25519)."""
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def registry_client_credentials(self, root_pem: bytes) -> grpc.ChannelCredentials:
        """mTLS credentials for calling another mesh's registry as this registry (its own
        certificate, trusting only ``root_pem``: the CA of the mesh being called)."""
        return grpc.ssl_channel_credentials(
            root_certificates=root_pem, private_key=read_secret(self.ca_dir / "registry.key"),
            certificate_chain=(self.ca_dir / "registry.crt").read_bytes())

    # ---- revocation ------------------------------------------------------------------------
    def sign_crl(self, revoked: list[RevokedEntry], *, number: int, this_update: datetime,
                 next_update: datetime) -> x509.CertificateRevocationList:
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.certificate.subject)
                   .last_update(this_update).next_update(next_update)
                   .add_extension(x509.CRLNumber(number), critical=False))
        for entry in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(entry.serial)
                .revocation_date(entry.revoked_at).build())
        return builder.sign(self._key, hashes.SHA256())


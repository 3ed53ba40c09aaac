"""The node's key store: the one place that creates, reads and uses private keys.

A key is generated on the node and never leaves it (X-Road's signer idea). Other code asks the
key store for a CSR, a signature or gRPC credentials; nothing else opens key files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mesh.files import atomic_write, read_secret, write_secret

log = logging.getLogger("areamesh.mesh.keystore")


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key: supported by every TLS stack gRPC uses."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(read_secret(path), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: expected an EC private key")
    return key


def build_csr(key: ec.EllipticCurvePrivateKey, *, node_name: str,
              participant_id: str | None = None, uri: str | None = None) -> bytes:
    """A PEM CSR naming the node (and, once known, its participant and URI). The registry checks
    every claim in it against the token or the caller's certificate, and decides the names in
    the certificate itself."""
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, node_name)]
    if participant_id:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, participant_id))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if uri:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class NodeKeyStore:
    """Holds ``tls/node.key``, ``tls/node.crt`` and ``tls/ca.crt`` of one node's data dir."""

    def __init__(self, tls_dir: Path) -> None:
        self.tls_dir = tls_dir
        self.key_path = tls_dir / "node.key"
        self.cert_path = tls_dir / "node.crt"
        self.ca_path = tls_dir / "ca.crt"
        #: the roots of federated meshes (connector/federation.py writes it): accepted from
        #: callers, never used to dial this mesh's registry or nodes
        self.federated_roots_path = tls_dir / "federated-roots.pem"
        self._server_roots = b""
        self._pending_key: ec.EllipticCurvePrivateKey | None = None
        self._server_config: grpc.ServerCertificateConfiguration | None = None

    def exists(self) -> bool:
        return self.key_path.exists() and self.cert_path.exists() and self.ca_path.exists()

    def new_csr(self, *, node_name: str, participant_id: str | None = None,
                uri: str | None = None) -> bytes:
        """Generate a new key held in memory until ``install`` stores it with its certificate."""
        self._pending_key = generate_key()
        return build_csr(self._pending_key, node_name=node_name, participant_id=participant_id,
                         uri=uri)

    def install(self, cert_pem: bytes, ca_bundle_pem: bytes) -> None:
        """Store the pending key with its new certificate. Key first: a crash between the two
        writes leaves a key without its cert, which the next renewal replaces."""
        if self._pending_key is None:
            raise RuntimeError("install() without new_csr()")
        cert = x509.load_pem_x509_certificate(cert_pem)
        if cert.public_key() != self._pending_key.public_key():
            raise ValueError("certificate does not match the key this node generated")
        self.tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_secret(self.key_path, key_to_pem(self._pending_key))
        atomic_write(self.cert_path, cert_pem)
        atomic_write(self.ca_path, ca_bundle_pem)
        self._pending_key = None
        self._server_config = None
        log.info("stored node certificate serial=%x not_after=%s", cert.serial_number,
                 cert.not_valid_after_utc.isoformat())

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def trust_bundle_pem(self) -> bytes:
        return self.ca_path.read_bytes()

    def _key_pem(self) -> bytes:
        return read_secret(self.key_path)

    def sign(self, data: bytes) -> bytes:
        """A signature over ``data`` with the node key (ECDSA P-256 / SHA-256, DER-encoded)."""
        key = load_key(self.key_path)
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    def federated_roots_pem(self) -> bytes:
        try:
            return self.federated_roots_path.read_bytes()
        except FileNotFoundError:
            return b""

    def server_credentials_config(self) -> grpc.ServerCertificateConfiguration:
        """The current server configuration; the same object until ``install`` replaces the
        certificate or the federated roots change, so the dynamic credentials fetcher can tell
        when to switch. Client certificates of this mesh and of federated meshes are accepted
        by TLS; the gRPC interceptor then tells them apart (``mesh.federation``)."""
        roots = self.trust_bundle_pem() + self.federated_roots_pem()
        if self._server_config is None or roots != self._server_roots:
            self._server_config = grpc.ssl_server_certificate_configuration(
                [(self._key_pem(), self.cert_path.read_bytes())], root_certificates=roots)
            self._server_roots = roots
        return self._server_config

    def channel_credentials(self, roots_pem: bytes | None = None) -> grpc.ChannelCredentials:
        """mTLS client credentials: this node's certificate, trusting the mesh roots (or
        ``roots_pem``: a federated mesh's roots, to dial a node of that mesh)."""
        return grpc.ssl_channel_credentials(root_certificates=roots_pem or self.trust_bundle_pem(),
                                            private_key=self._key_pem(),
                                            certificate_chain=self.cert_path.read_bytes())

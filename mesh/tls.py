"""TLS plumbing for gRPC: server credentials that follow certificate renewal, the caller's
identity from the verified peer certificate, and first-contact CA discovery for enrolment."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from mesh.certs import PeerIdentity, fingerprint, identity_from_pem
from mesh.errors import PermissionDenied, Unavailable

log = logging.getLogger("areamesh.mesh.tls")


def dynamic_server_credentials(
    fetch: Callable[[], grpc.ServerCertificateConfiguration],
    *, require_client_auth: bool,
) -> grpc.ServerCredentials:
    """Server credentials that ask ``fetch`` for the current certificate on new handshakes.

    gRPC calls the fetcher from its own threads on each new connection; it must be cheap and
    must not raise. Returning None keeps the previous configuration.
    """
    initial = fetch()
    state = {"config": initial}

    def fetcher() -> grpc.ServerCertificateConfiguration | None:
        try:
            config = fetch()
        except Exception:
            log.exception("could not load server certificate; keeping the previous one")
            return None
        if config is state["config"]:
            return None
        state["config"] = config
        return config

    return grpc.dynamic_ssl_server_credentials(initial, fetcher,
                                               require_client_authentication=require_client_auth)


def peer_certificate_pem(context: grpc.aio.ServicerContext) -> bytes | None:
    """The caller's verified leaf certificate in PEM, or None when it sent none."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert")
    return pems[0] if pems else None


def peer_identity(context: grpc.aio.ServicerContext,
                  resolve: Callable[[bytes], PeerIdentity | None] = identity_from_pem
                  ) -> PeerIdentity | None:
    """The node identity in the caller's verified certificate (None without a certificate).

    ``resolve`` turns the PEM into an identity (``mesh.federation.TrustedMeshes.identity`` adds
    the caller's mesh). Raises ``PermissionDenied`` when a certificate is present but names no
    mesh node.
    """
    pem = peer_certificate_pem(context)
    if pem is None:
        return None
    identity = resolve(pem)
    if identity is None:
        raise PermissionDenied("the client certificate names no areamesh node (URI SAN "
                               "urn:areamesh:org:<id>:node:<name> missing)",
                               message_ja="クライアント証明書にノードの識別子がありません")
    return identity


def _fetch_chain_blocking(host: str, port: int, timeout: float) -> list[x509.Certificate]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint, checked below
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=None) as tls:
            getter = getattr(tls, "get_unverified_chain", None)  # public from Python 3.13
            if getter is None:
                getter = tls._sslobj.get_unverified_chain
            der = getattr(ssl, "ENCODING_DER", None) or ssl._ssl.ENCODING_DER
            ders = [c.public_bytes(der) for c in (getter() or [])]
    return [x509.load_der_x509_certificate(d) for d in ders]


# A handshake the registry resets or cuts short (its accept queue full in an enrolment storm, a
# load balancer between replicas moving on) is worth another try; a refused connection or a
# timeout is not, and is reported at once.
_TRANSIENT = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ssl.SSLEOFError)
DISCOVERY_ATTEMPTS = 4


async def _fetch_chain_retrying(host: str, port: int, timeout: float) -> list[x509.Certificate]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            return await asyncio.to_thread(_fetch_chain_blocking, host, port,
                                           max(0.5, deadline - loop.time()))
        except _TRANSIENT as exc:
            pause = 0.1 * 2 ** attempt
            if attempt >= DISCOVERY_ATTEMPTS or loop.time() + pause >= deadline:
                raise _unreachable(host, port, exc, attempt) from exc
            log.info("registry %s:%s cut the TLS handshake short (%s); trying again",
                     host, port, type(exc).__name__)
            await asyncio.sleep(pause)
        except (OSError, ssl.SSLError) as exc:
            raise _unreachable(host, port, exc, attempt) from exc


def _unreachable(host: str, port: int, exc: BaseException, attempts: int) -> Unavailable:
    tried = f" ({attempts} attempts)" if attempts > 1 else ""
    return Unavailable(f"cannot reach the registry at {host}:{port}{tried}: "
                       f"{type(exc).__name__}: {exc}",
                       message_ja=f"レジストリ {host}:{port} に接続できません")


async def discover_pinned_ca(host: str, port: int, pinned: str, *,
                             timeout: float = 10.0) -> x509.Certificate:
    """First contact with a registry (like ``kubeadm join --discovery-token-ca-cert-hash``).

    Opens a TLS connection without trusting anything, takes the certificate chain the registry
    presents, and returns the CA certificate whose fingerprint equals ``pinned``, after checking
    that it issued the registry's leaf. Anything else raises ``PermissionDenied``; an unreachable
    registry raises ``Unavailable``.
    """
    chain = await _fetch_chain_retrying(host, port, timeout)
    if not chain:
        raise PermissionDenied(f"the registry at {host}:{port} presented no certificate")
    leaf, presented = chain[0], chain[1:]
    for ca in presented:
        if fingerprint(ca) != pinned:
            continue
        try:
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise PermissionDenied(f"the pinned CA did not issue the registry's certificate: {exc}"
                                   ) from exc
        return ca
    seen = ", ".join(fingerprint(c) for c in presented) or "none"
    raise PermissionDenied(
        f"the registry at {host}:{port} does not hold the CA pinned by the token "
        f"(token pins {pinned}; registry presented {seen}). Check that the token was "
        "created by this registry.",
        message_ja="参加トークンに記録された認証局の指紋がレジストリの認証局と一致しません",
        code="ca_fingerprint_mismatch")


def pem_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)

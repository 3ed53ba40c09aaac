"""First contact with a registry: a reset handshake is tried again, anything else is reported.

A real TLS server on 127.0.0.1 presents a registry chain from a real mesh CA; for the first
connections it resets the TCP connection (SO_LINGER 0) as an overloaded registry would.
"""
from __future__ import annotations

import socket
import ssl
import struct
import threading
from pathlib import Path

import pytest

from mesh.errors import Unavailable
from mesh.tls import DISCOVERY_ATTEMPTS, discover_pinned_ca
from registry.ca.authority import CertificateAuthority


class ResettingRegistry:
    """Resets the first ``resets`` connections, then completes TLS handshakes."""

    def __init__(self, ca_dir: Path, resets: int) -> None:
        chain = ca_dir / "chain.pem"
        chain.write_bytes((ca_dir / "registry.crt").read_bytes() + (ca_dir / "ca.crt").read_bytes())
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(chain, ca_dir / "registry.key")
        self._resets = resets
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections <= self._resets:
                conn.recv(1)  # the client's hello has arrived: now cut it off
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            try:
                with self._ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path / "ca", mesh_id="discovery-test", name="試験")


async def test_a_reset_handshake_is_tried_again(ca: CertificateAuthority):
    server = ResettingRegistry(ca.ca_dir, resets=2)
    try:
        found = await discover_pinned_ca("127.0.0.1", server.port, ca.fingerprint, timeout=10)
    finally:
        server.close()
    assert found == ca.certificate
    assert server.connections == 3


async def test_a_registry_that_keeps_resetting_is_reported_unavailable(ca: CertificateAuthority):
    server = ResettingRegistry(ca.ca_dir, resets=100)
    try:
        with pytest.raises(Unavailable) as caught:
            await discover_pinned_ca("127.0.0.1", server.port, ca.fingerprint, timeout=10)
    finally:
        server.close()
    assert server.connections == DISCOVERY_ATTEMPTS
    assert f"({DISCOVERY_ATTEMPTS} attempts)" in str(caught.value)
    assert "ConnectionResetError" in str(caught.value)


async def test_a_refused_connection_is_reported_at_once(ca: CertificateAuthority):
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    with pytest.raises(Unavailable) as caught:
        await discover_pinned_ca("127.0.0.1", port, ca.fingerprint, timeout=10)
    assert "attempts" not in str(caught.value)
    assert "ConnectionRefusedError" in str(caught.value)

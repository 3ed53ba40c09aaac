"""Joining the mesh: pin the CA from the token, send a CSR, store the node's certificate.

The node key is generated here and never sent anywhere; only the CSR leaves the node.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

from connector.node_state import NodeState
from mesh.certs import load_pem_bundle
from mesh.config import default_enrol_address, parse_hostport
from mesh.errors import InvalidRequest, from_grpc
from mesh.ids import node_identity_uri, registry_dns_name, validate_node_name
from mesh.jointoken import JoinToken
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import registry_pb2, registry_pb2_grpc
from mesh.tls import discover_pinned_ca, pem_of

log = logging.getLogger("areamesh.connector.enrol")


def _mesh_id_from(ca_pem: bytes) -> str:
    """The mesh id the registry put in its CA's common name: 'areamesh root CA (<mesh>)'."""
    cn = load_pem_bundle(ca_pem)[0].subject.rfc4514_string()
    start, end = cn.find("("), cn.find(")")
    return cn[start + 1:end] if start >= 0 < end else "default"


async def join(data_dir: Path, registry: str, token_text: str, node_name: str,
               *, enrol: str | None = None, timeout: float = 15.0) -> NodeState:
    """Enrol this node; raises ``AreameshError`` with a clear message on any refusal.

    ``registry`` is the registry's mTLS address, stored for later; enrolment itself goes to
    ``enrol`` (default: the same host, one port below), where only server TLS is required.
    """
    validate_node_name(node_name)
    token = JoinToken.parse(token_text)
    parse_hostport(registry, what="--registry")
    host, port = parse_hostport(enrol or default_enrol_address(registry), what="--enrol")
    if (data_dir / "tls" / "node.crt").exists():
        raise InvalidRequest(f"{data_dir} already holds a node certificate; use a fresh data "
                             "dir (certificates renew automatically while serving)",
                             message_ja="このデータディレクトリは参加済みです")
    ca = await discover_pinned_ca(host, port, token.ca_fingerprint, timeout=timeout)
    ca_pem = pem_of(ca)
    mesh_id = _mesh_id_from(ca_pem)
    keystore = NodeKeyStore(data_dir / "tls")
    # The participant comes from the token at the registry; the CSR names only the node, and
    # the registry fills in (and checks) the participant.
    csr = keystore.new_csr(node_name=node_name)
    request = registry_pb2.EnrolRequest(token_id=token.token_id, token_secret=token.secret,
                                        ca_fingerprint=token.ca_fingerprint, node_name=node_name,
                                        csr_pem=csr)
    options = [("grpc.ssl_target_name_override", registry_dns_name(mesh_id))]
    async with grpc.aio.secure_channel(f"{host}:{port}", grpc.ssl_channel_credentials(ca_pem),
                                       options=options) as channel:
        try:
            # wait_for_ready: a connection the registry resets before the call is sent is
            # redialled within the timeout; the token is spent only by a call that arrives.
            reply = await registry_pb2_grpc.RegistryServiceStub(channel).Enrol(
                request, timeout=timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, what="enrolment refused by the registry") from None
    bundle = b"".join(reply.trust_bundle.ca_certificates_pem) or ca_pem
    keystore.install(reply.certificate_pem, bundle)
    state = NodeState(participant_id=reply.participant_id,
                      participant_name=reply.participant_name, node_name=node_name,
                      mesh_id=reply.trust_bundle.mesh_id or mesh_id, registry=registry)
    state.save(data_dir)
    log.info("joined mesh %s as %s", state.mesh_id,
             node_identity_uri(state.participant_id, node_name))
    return state

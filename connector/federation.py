"""FederatedTrust: the connector's view of the meshes its registry federates with.

The registry hands the active federations out with the trust bundle (``GetTrustBundle``: each
federated mesh's id, CA certificates and current revocation list, signed by that mesh's CA). The
connector fetches the bundle with every revocation-list refresh and keeps:

- ``tls/federation.json``: the federated meshes and their roots (read again at start-up);
- ``tls/federated-roots.pem``: the same roots for TLS (``NodeKeyStore`` accepts callers with
  certificates from them; it never dials its own registry or own-mesh nodes with them);
- ``tls/crl-<mesh>.der``: each federated mesh's revocation list, verified against that mesh's CA
  alone, never rolled back, used until its next-update plus ``connector.crl.grace``.

Every call is then checked (``check``, the interceptor's revocation checker) against the list of
the caller's own mesh, which ``mesh.federation.TrustedMeshes`` found by signature. A mesh the
registry no longer lists is dropped at the refresh: its callers are refused (``mesh_not_trusted``)
from the next call on, on connections already open too.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from mesh.certs import PeerIdentity, load_pem_bundle, to_pem
from mesh.errors import AreameshError, PermissionDenied
from mesh.federation import TrustedMeshes, mesh_of_ca, parse_qualified_uri, qualified_uri
from mesh.files import atomic_write
from mesh.ids import MESH_ID
from mesh.proto.areamesh.v1 import registry_pb2
from mesh.revocation import CachedRevocationList

log = logging.getLogger("areamesh.connector.federation")


def federated_roots(tls_dir: Path, mesh_id: str) -> bytes | None:
    """The PEM roots of federated mesh ``mesh_id`` as last received (None: not federated)."""
    path = tls_dir / "federation.json"
    if not path.exists():
        return None
    for m in json.loads(path.read_text()).get("meshes", []):
        if m["mesh_id"] == mesh_id:
            return "".join(m["ca_certificates_pem"]).encode()
    return None


def own_party_uri(state, counterparty: str) -> str:
    """This node's URI as an agreement with ``counterparty`` names it: mesh-qualified when the
    counterparty is of a federated mesh (``mesh.federation``), plain otherwise."""
    if parse_qualified_uri(counterparty) is None:
        return state.identity_uri
    return qualified_uri(state.mesh_id, state.participant_id, state.node_name)


def federated_roots_map(tls_dir: Path) -> dict[str, list[x509.Certificate]]:
    """Every federated mesh's roots as last received, by mesh id (for signed documents)."""
    path = tls_dir / "federation.json"
    if not path.exists():
        return {}
    return federated_roots_of(path.read_bytes())


def federated_roots_of(federation_json: bytes) -> dict[str, list[x509.Certificate]]:
    """The roots by mesh id in the text of a tls/federation.json."""
    return {m["mesh_id"]: load_pem_bundle("".join(m["ca_certificates_pem"]).encode())
            for m in json.loads(federation_json).get("meshes", [])}


class FederatedTrust:
    """The roots and revocation lists of this node's mesh and the federated ones."""

    def __init__(self, tls_dir: Path, own_mesh: str, own_roots: list[x509.Certificate],
                 own_crl: CachedRevocationList, *, grace: timedelta) -> None:
        self.tls_dir = tls_dir
        self.own_mesh = own_mesh
        self.own_roots = own_roots
        self.own_crl = own_crl
        self.grace = grace
        self.names: dict[str, str] = {}
        self.crls: dict[str, CachedRevocationList] = {}
        self.trust = TrustedMeshes(own_mesh, {own_mesh: own_roots})
        path = tls_dir / "federation.json"
        if path.exists():
            try:
                self._install({m["mesh_id"]: (m.get("name", ""), load_pem_bundle(
                    "".join(m["ca_certificates_pem"]).encode()))
                    for m in json.loads(path.read_text()).get("meshes", [])})
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable %s: %s", path, exc)

    def _crl_path(self, mesh_id: str) -> Path:
        return self.tls_dir / f"crl-{mesh_id}.der"

    def _install(self, meshes: dict[str, tuple[str, list[x509.Certificate]]]) -> None:
        for mesh_id, (_name, roots) in meshes.items():
            if mesh_id not in self.crls or self.crls[mesh_id].roots != roots:
                self.crls[mesh_id] = CachedRevocationList(roots, self._crl_path(mesh_id),
                                                          grace=self.grace)
        for gone in set(self.crls) - set(meshes):
            del self.crls[gone]
            self._crl_path(gone).unlink(missing_ok=True)
        self.names = {m: name for m, (name, _) in meshes.items()}
        self.trust.replace({self.own_mesh: self.own_roots,
                            **{m: roots for m, (_n, roots) in meshes.items()}})

    def apply(self, bundle: registry_pb2.TrustBundle) -> list[str]:
        """Adopt the registry's current federations; return the federated mesh ids. A mesh whose
        entry is malformed, names our own mesh, or whose list does not verify, is left out."""
        meshes: dict[str, tuple[str, list[x509.Certificate]]] = {}
        lists: dict[str, bytes] = {}
        for f in bundle.federated:
            try:
                roots = [x509.load_pem_x509_certificate(p) for p in f.ca_certificates_pem]
                if not MESH_ID.match(f.mesh_id) or f.mesh_id == self.own_mesh or not roots \
                        or any(mesh_of_ca(r) != f.mesh_id for r in roots):
                    raise ValueError(f"malformed federated mesh entry {f.mesh_id!r}")
            except ValueError as exc:
                log.error("trust bundle: %s; left out", exc)
                continue
            meshes[f.mesh_id] = (f.name, roots)
            lists[f.mesh_id] = f.crl_der
        before = set(self.crls)
        self._install(meshes)
        for mesh_id, der in lists.items():
            try:
                self.crls[mesh_id].update(der)
            except AreameshError as exc:
                log.warning("revocation list of federated mesh %s not adopted: %s", mesh_id,
                            exc.message)
        atomic_write(self.tls_dir / "federation.json", json.dumps({"meshes": [
            {"mesh_id": m, "name": name, "ca_certificates_pem": [to_pem(c).decode() for c in r]}
            for m, (name, r) in sorted(meshes.items())]}, ensure_ascii=False, indent=2).encode())
        atomic_write(self.tls_dir / "federated-roots.pem",
                     b"".join(to_pem(c) for _m, (_n, r) in sorted(meshes.items()) for c in r))
        if set(meshes) != before:
            log.info("federated meshes now: %s (were: %s)", ", ".join(sorted(meshes)) or "none",
                     ", ".join(sorted(before)) or "none")
        return sorted(meshes)

    async def check(self, identity: PeerIdentity) -> None:
        """The revocation check for a caller of this mesh or a federated one."""
        if not identity.mesh_id:
            await self.own_crl.check(identity)
            return
        crl = self.crls.get(identity.mesh_id)
        if crl is None:
            raise PermissionDenied(f"mesh {identity.mesh_id} is not federated with this mesh "
                                   "(any longer)", message_ja=f"メッシュ {identity.mesh_id} とは"
                                   "連携していません", code="mesh_not_trusted")
        await crl.check(identity)

    def status(self) -> list[dict[str, object]]:
        return [{"mesh_id": m, "name": self.names.get(m, ""),
                 "revocation_list_number": c.number,
                 "usable_until": c.usable_until().isoformat() if c.usable_until() else None}
                for m, c in sorted(self.crls.items())]

"""Federation between meshes (基盤間連携, DESIGN §4 and §14): the signed federation document and
the set of trusted roots a node verifies peers against.

A **federation document** is what one mesh's operator hands another's: the mesh id, its root CA
certificate(s), the registry's mTLS endpoint, the time it was issued, and a signature over the
canonical JSON of all that, made with the mesh CA key. The signature proves the document was made
by whoever holds the CA key it names (and was not altered on the way); whether that CA is the
mesh it says is for the operators to confirm out of band, by the fingerprint ``federation
export`` prints and ``federation add`` shows (like an SSH host key).

**Trusted meshes** (``TrustedMeshes``): the node's own mesh and each federated mesh, each with
its roots. A peer certificate belongs to the mesh whose root key *signed* it (checked by
signature, never by issuer name: another mesh may copy a name), and the mesh named in its DNS SAN
(``<node>.<participant>.<mesh>.areamesh.invalid``) must be that same mesh. A peer of the node's
own mesh keeps its plain URI (``urn:areamesh:org:<id>:node:<name>``); a peer of a federated
mesh is known by the mesh-qualified URI ``urn:areamesh:mesh:<mesh>:org:<id>:node:<name>``, so a
participant of another mesh can never be mistaken for a local one anywhere a URI is compared.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtensionOID, NameOID

from mesh.certs import PeerIdentity, fingerprint, identity_of, to_pem
from mesh.clock import from_iso
from mesh.config import parse_hostport
from mesh.datasets import canonical_json
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.ids import MESH_ID
from mesh.signatures import issued_by, verify_raw_signature

KIND = "areamesh.federation/v1"
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_CAS = 4
_FIELDS = {"kind", "mesh_id", "name", "ca_certificates_pem", "registry_endpoint", "issued",
           "signature"}
_NODE_DNS = re.compile(r"^([a-z0-9-]{1,63})\.([0-9]{6}|[0-9]{13})\.([a-z0-9-]{1,63})"
                       r"\.areamesh\.invalid\Z")


def bad_document(message: str, message_ja: str, code: str = "federation_document_invalid"
                 ) -> InvalidRequest:
    return InvalidRequest(message, message_ja=message_ja, code=code)


def qualified_uri(mesh_id: str, participant_id: str, node_name: str) -> str:
    """The URI of a node of another mesh: ``urn:areamesh:mesh:<mesh>:org:<id>:node:<name>``."""
    return f"urn:areamesh:mesh:{mesh_id}:org:{participant_id}:node:{node_name}"


_QUALIFIED = re.compile(r"^urn:areamesh:mesh:([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
                        r":(org:(?:[0-9]{6}|[0-9]{13}):node:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\Z")


def parse_qualified_uri(uri: str) -> tuple[str, str] | None:
    """``(mesh_id, plain node URI)`` of a mesh-qualified node URI, else None."""
    m = _QUALIFIED.match(uri)
    return (m.group(1), f"urn:areamesh:{m.group(2)}") if m else None


def absolute_uri(cert: x509.Certificate) -> str | None:
    """The mesh-qualified URI of the node a certificate names (its mesh from its DNS SAN)."""
    ident = identity_of(cert)
    mesh_id = claimed_mesh(cert)
    if ident is None or mesh_id is None:
        return None
    return qualified_uri(mesh_id, ident.participant_id, ident.node_name)


def roots_for(party_uri: str, roots: list[x509.Certificate],
              federated: dict[str, list[x509.Certificate]]
              ) -> tuple[list[x509.Certificate], str, str | None]:
    """For a party URI of a signed document: (the roots its signer must chain to, the plain node
    URI its certificate must name, the mesh it must name or None). A plain URI is this mesh's
    (``roots``); a qualified one is its mesh's: ``roots`` if they are that mesh's, else
    ``federated[mesh]`` (empty when not federated, so the signer is untrusted)."""
    parsed = parse_qualified_uri(party_uri)
    if parsed is None:
        return roots, party_uri, None
    mesh_id, plain = parsed
    if roots and all(mesh_of_ca(r) == mesh_id for r in roots):
        return roots, plain, mesh_id
    return federated.get(mesh_id, []), plain, mesh_id


def mesh_of_ca(cert: x509.Certificate) -> str | None:
    """The mesh id a registry wrote into its CA's common name ('areamesh root CA (<mesh>)')."""
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        m = re.fullmatch(r"areamesh root CA \(([a-z0-9-]{1,63})\)", str(attr.value))
        if m:
            return m.group(1)
    return None


@dataclass(frozen=True)
class FederationDocument:
    mesh_id: str
    name: str
    ca_certificates_pem: tuple[str, ...]
    registry_endpoint: str
    issued: str
    signature: str = ""

    def payload(self) -> dict[str, Any]:
        return {"kind": KIND, "mesh_id": self.mesh_id, "name": self.name,
                "ca_certificates_pem": list(self.ca_certificates_pem),
                "registry_endpoint": self.registry_endpoint, "issued": self.issued}

    def signed_bytes(self) -> bytes:
        return canonical_json(self.payload())

    def to_json(self) -> dict[str, Any]:
        return {**self.payload(), "signature": self.signature}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n"

    @functools.cached_property
    def certificates(self) -> list[x509.Certificate]:
        return [x509.load_pem_x509_certificate(p.encode()) for p in self.ca_certificates_pem]

    @property
    def fingerprints(self) -> list[str]:
        return [fingerprint(c) for c in self.certificates]

    @classmethod
    def parse(cls, data: bytes) -> FederationDocument:
        """Read and fully verify a document; raise ``InvalidRequest`` saying what is wrong.

        Checks: size, JSON shape, mesh id, endpoint, every CA is a CA certificate whose common
        name names this mesh, and the signature verifies with one of the document's CA keys."""
        if len(data) > MAX_DOCUMENT_BYTES:
            raise bad_document(f"federation document is {len(data)} bytes; the limit is "
                               f"{MAX_DOCUMENT_BYTES}", "連携文書が大きすぎます")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise bad_document("federation document is not JSON",
                               "連携文書がJSONではありません") from None
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise bad_document(f"not a federation document (kind must be {KIND!r})",
                               "メッシュ連携文書ではありません")
        if set(doc) != _FIELDS:
            raise bad_document("federation document fields must be exactly "
                               + ", ".join(sorted(_FIELDS)), "連携文書の項目が正しくありません")
        mesh_id, pems = doc["mesh_id"], doc["ca_certificates_pem"]
        if not isinstance(mesh_id, str) or not MESH_ID.match(mesh_id):
            raise bad_document(f"mesh id {mesh_id!r} is not a DNS label",
                               "メッシュIDの形式が正しくありません", "federation_mesh_id_invalid")
        if not all(isinstance(doc[k], str) for k in ("name", "registry_endpoint", "issued",
                                                        "signature")):
            raise bad_document("name, registry_endpoint, issued and signature must be strings",
                               "連携文書の項目の型が正しくありません")
        if not (isinstance(pems, list) and 1 <= len(pems) <= MAX_CAS
                and all(isinstance(p, str) for p in pems)):
            raise bad_document(f"ca_certificates_pem must list 1–{MAX_CAS} PEM certificates",
                               "認証局証明書の一覧が正しくありません")
        parse_hostport(doc["registry_endpoint"], what="registry_endpoint")
        try:
            from_iso(doc["issued"])
        except ValueError:
            raise bad_document("issued is not an ISO 8601 time",
                               "発行日時の形式が正しくありません") from None
        out = cls(mesh_id=mesh_id, name=doc["name"][:200], ca_certificates_pem=tuple(pems),
                  registry_endpoint=doc["registry_endpoint"], issued=doc["issued"],
                  signature=doc["signature"])
        try:
            certs = out.certificates
        except ValueError as exc:
            raise bad_document(f"a CA certificate cannot be read: {exc}",
                               "認証局証明書を読み取れません") from None
        for cert in certs:
            try:
                ca = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca
            except x509.ExtensionNotFound:
                ca = False
            if not ca or not issued_by(cert, cert):
                raise bad_document(f"{fingerprint(cert)} is not a self-signed CA certificate",
                                   "自己署名の認証局証明書ではありません")
            if mesh_of_ca(cert) != mesh_id:
                raise bad_document(
                    f"CA {fingerprint(cert)} names mesh {mesh_of_ca(cert)!r}, the document "
                    f"says {mesh_id!r}", "認証局証明書のメッシュIDが文書と一致しません",
                    "federation_mesh_id_mismatch")
        out.verify()
        return out

    def verify(self) -> None:
        try:
            raw = base64.b64decode(self.signature, validate=True)
        except ValueError:
            raw = b""
        for cert in self.certificates:
            try:
                verify_raw_signature(cert.public_key(), raw, self.signed_bytes())
                return
            except InvalidSignature:
                continue
        raise bad_document(
            f"the signature of the federation document of mesh {self.mesh_id} does not verify "
            "with its CA key: the document was altered or not made by that CA",
            "連携文書の署名を検証できません（改ざん、または別の認証局による署名）",
            "federation_signature_invalid")


# ---- the roots a node trusts -----------------------------------------------------------------
class TrustedMeshes:
    """The node's own mesh and the federated ones, each with its roots. ``replace`` swaps the
    federated set (after a trust-bundle refresh); identities resolved before are forgotten."""

    CACHE_SIZE = 4096

    def __init__(self, own_mesh: str, roots: dict[str, list[x509.Certificate]]) -> None:
        self.own_mesh = own_mesh
        self.roots = dict(roots)
        self._cache: dict[bytes, PeerIdentity | None] = {}

    def replace(self, roots: dict[str, list[x509.Certificate]]) -> None:
        self.roots = dict(roots)
        self._cache = {}

    def federated(self) -> list[str]:
        return sorted(m for m in self.roots if m != self.own_mesh)

    def roots_pem(self, mesh_id: str | None = None) -> bytes:
        meshes = [mesh_id] if mesh_id else sorted(self.roots)
        return b"".join(to_pem(c) for m in meshes for c in self.roots.get(m, []))

    def all_roots(self) -> list[x509.Certificate]:
        return [c for m in sorted(self.roots) for c in self.roots[m]]

    def mesh_of(self, cert: x509.Certificate) -> str | None:
        """The mesh whose root key signed ``cert`` (None: no trusted root did)."""
        for mesh_id, roots in self.roots.items():
            if any(issued_by(cert, root) for root in roots):
                return mesh_id
        return None

    def identity(self, pem: bytes) -> PeerIdentity | None:
        """The caller's identity with its mesh; see the module docstring. None when the
        certificate names no node; raises ``PermissionDenied`` when it is not (any longer)
        signed by a trusted mesh or claims a mesh other than the one that signed it."""
        if pem in self._cache:
            return self._cache[pem]
        found = self.identity_of(x509.load_pem_x509_certificate(pem))
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache = {}
        self._cache[pem] = found
        return found

    def identity_of(self, cert: x509.Certificate) -> PeerIdentity | None:
        identity = identity_of(cert)
        if identity is None:
            return None
        mesh_id = self.mesh_of(cert)
        if mesh_id is None:
            raise PermissionDenied(
                f"the certificate of {identity.uri} was not issued by this mesh's CA nor by a "
                "federated mesh's CA (is the federation removed?)",
                message_ja="証明書の発行元が、このメッシュにも連携先メッシュにもありません",
                code="mesh_not_trusted")
        claimed = claimed_mesh(cert)
        if claimed != mesh_id:
            raise PermissionDenied(
                f"{identity.uri} claims to belong to mesh {claimed!r}, but its certificate was "
                f"issued by mesh {mesh_id!r}", message_ja="証明書が、発行元とは別のメッシュへの"
                "所属を名乗っています", code="mesh_claim_mismatch")
        if mesh_id == self.own_mesh:
            return identity
        return replace(identity, mesh_id=mesh_id, uri=qualified_uri(
            mesh_id, identity.participant_id, identity.node_name))


def claimed_mesh(cert: x509.Certificate) -> str | None:
    """The mesh named by a node certificate's DNS SAN (None when it names none)."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return None
    for name in san.get_values_for_type(x509.DNSName):
        m = _NODE_DNS.match(name)
        if m:
            return m.group(3)
    return None

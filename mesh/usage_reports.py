"""Signed usage reports: what a node tells the registry's metering, signed with the node key.

A report document is ``{"kind": "areamesh.usage.report/v1", "node", "seq", "made", "role",
"records": [...], "consent_counts": [...]}``:

- ``node``: the reporting node's identity URI; ``seq``: the node's report number (it rises by one
  per report sent; a retry of the same report keeps its number and bytes); ``made``: ISO 8601 UTC.
- ``role``: ``provider`` (transfers this node served) or ``consumer`` (transfers it received).
- ``records``: one per transfer: ``transfer_id, agreement_id, dataset_id, records, bytes, batches,
  started_at, ended_at, incremental``.
- ``consent_counts``: one per personal dataset the node serves: ``dataset_id, residents,
  consents`` (integers only: a count of residents with a valid consent, never who they are).

The signature is the node key's over ``canonical_json`` of the document, with the certificate
attached, checked like agreements and ledger checkpoints (``mesh.signatures``): the certificate
chains to a trusted mesh root, names the node the report claims, was valid when it was made, and
the signature matches. Both sides need the document, so it lives in ``mesh``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509

from mesh.clock import from_iso, iso, utcnow
from mesh.datasets import canonical_json
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.keystore import NodeKeyStore
from mesh.signatures import SignatureCheckError, sign_as_node, verify_signature_by

KIND = "areamesh.usage.report/v1"
ROLES = ("provider", "consumer")
RECORD_FIELDS = {"transfer_id": str, "agreement_id": str, "dataset_id": str, "records": int,
                 "bytes": int, "batches": int, "started_at": str, "ended_at": str,
                 "incremental": bool}
CONSENT_FIELDS = {"dataset_id": str, "residents": int, "consents": int}
MAX_RECORDS = 1000
MAX_CONSENT_COUNTS = 1000


@dataclass(frozen=True)
class UsageReport:
    node: str
    seq: int
    made: str
    role: str
    records: list[dict[str, Any]]
    consent_counts: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"kind": KIND, "node": self.node, "seq": self.seq, "made": self.made,
                "role": self.role, "records": self.records, "consent_counts": self.consent_counts}

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())


@dataclass(frozen=True)
class SignedUsageReport:
    report: UsageReport
    certificate_pem: str
    signature: str   # base64 of the DER ECDSA signature

    @classmethod
    def sign(cls, keystore: NodeKeyStore, *, seq: int, role: str, records: list[dict[str, Any]],
             consent_counts: list[dict[str, Any]] | None = None) -> SignedUsageReport:
        return cls(*sign_as_node(
            keystore, lambda node: UsageReport(node, seq, iso(utcnow()), role, records,
                                               consent_counts or []),
            what="reports", code="usage_report_signer_unnamed"))

    def to_json(self) -> dict[str, Any]:
        return {"report": self.report.to_json(), "certificate_pem": self.certificate_pem,
                "signature": self.signature}

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, doc: Any) -> SignedUsageReport:
        """Parse a signed report; ``InvalidRequest`` ``malformed_usage_report`` if it is not one."""
        try:
            body = doc["report"]
            if body.get("kind") != KIND:
                raise ValueError(f"kind is {body.get('kind')!r}, expected {KIND!r}")
            seq = body["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError("seq must be a non-negative integer")
            if body["role"] not in ROLES:
                raise ValueError(f"role must be one of {ROLES}")
            fields = (body["node"], body["made"], doc["certificate_pem"], doc["signature"])
            if not all(isinstance(f, str) for f in fields):
                raise ValueError("node, made, certificate_pem and signature must be strings")
            from_iso(body["made"])
            records = _entries(body["records"], RECORD_FIELDS, MAX_RECORDS, "records")
            counts = _entries(body["consent_counts"], CONSENT_FIELDS, MAX_CONSENT_COUNTS,
                              "consent_counts")
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise InvalidRequest(f"not a usage report: {exc}",
                                 message_ja="利用量報告の形式ではありません",
                                 code="malformed_usage_report") from None
        return cls(UsageReport(body["node"], seq, body["made"], body["role"], records, counts),
                   doc["certificate_pem"], doc["signature"])


def _entries(items: Any, fields: dict[str, type], limit: int, name: str) -> list[dict[str, Any]]:
    """Entries with exactly ``fields`` of their types (no extra keys: nothing else, e.g. a
    resident id, can ride along) and no negative count."""
    if not isinstance(items, list) or len(items) > limit:
        raise ValueError(f"{name} must be a list of at most {limit}")
    for item in items:
        if not isinstance(item, dict) or set(item) != set(fields):
            raise ValueError(f"each of {name} has exactly the keys {sorted(fields)}")
        for key, kind in fields.items():
            value = item[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ValueError(f"{name}: {key} must be {kind.__name__}")
            if kind is int and value < 0:
                raise ValueError(f"{name}: {key} must not be negative")
    return items


_FAILURES = {
    "malformed": ("usage_report_signature_invalid", "利用量報告の署名の形式が正しくありません"),
    "untrusted": ("usage_report_signer_untrusted",
                  "利用量報告の署名者の証明書が信頼できる認証局のものではありません"),
    "mismatch": ("usage_report_signer_mismatch", "利用量報告の署名者が報告したノードと一致しません"),
    "expired": ("usage_report_signer_expired", "報告の時刻に署名者の証明書が有効ではありません"),
    "invalid": ("usage_report_signature_invalid", "利用量報告の署名が一致しません（改ざんまたは偽造）"),
}


def verify_report(signed: SignedUsageReport, roots: list[x509.Certificate]) -> None:
    """Raise ``PermissionDenied`` naming the failed check (``mesh.signatures`` order)."""
    r = signed.report
    try:
        verify_signature_by(signed.certificate_pem, signed.signature, r.canonical(), roots,
                            expected_uri=r.node, at=from_iso(r.made))
    except SignatureCheckError as exc:
        code, message_ja = _FAILURES[exc.check]
        raise PermissionDenied(f"usage report {r.seq} of node {r.node}: {exc.message}",
                               message_ja=message_ja, code=code) from None

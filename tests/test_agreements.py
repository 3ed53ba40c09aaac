"""Agreements signed by both connectors: verification and every way it must fail."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest

from mesh.agreements import Agreement, PartySignature, SignedAgreement, verify_signed
from mesh.certs import to_pem
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.ids import node_identity_uri
from mesh.keystore import NodeKeyStore
from registry.ca.authority import CertificateAuthority

PROVIDER = node_identity_uri("282014", "main")
CONSUMER = node_identity_uri("270008", "main")


def node(ca: CertificateAuthority, root: Path, pid: str, name: str = "main") -> NodeKeyStore:
    ks = NodeKeyStore(root / f"{pid}-{name}")
    csr = ca.check_csr(ks.new_csr(node_name=name), participant_id=pid, node_name=name)
    ks.install(to_pem(ca.issue_node_certificate(csr, participant_id=pid, node_name=name,
                                                lifetime=timedelta(days=1))), ca.ca_pem())
    return ks


@pytest.fixture
def mesh(tmp_path: Path):
    ca = CertificateAuthority.create(tmp_path / "ca", mesh_id="t", name="運営組織")
    return ca, node(ca, tmp_path, "282014"), node(ca, tmp_path, "270008"), tmp_path


def agreement() -> Agreement:
    return Agreement.new(dataset_id="himeji-aed", offer_id="research-use",
                         policy={"permissions": [{"action": "use"}]}, provider=PROVIDER,
                         consumer=CONSUMER, purpose="研究")


def both_signed(provider: NodeKeyStore, consumer: NodeKeyStore) -> SignedAgreement:
    return (SignedAgreement(agreement(), {}).with_signature("provider", provider)
            .with_signature("consumer", consumer))


def test_both_signatures_verify_and_survive_json_round_trip(mesh):
    ca, provider, consumer, _ = mesh
    signed = both_signed(provider, consumer)
    verify_signed(signed, [ca.certificate])
    again = SignedAgreement.from_json(json.loads(json.dumps(signed.to_json(), ensure_ascii=False)))
    verify_signed(again, [ca.certificate])
    assert again.agreement.digest() == signed.agreement.digest()
    assert signed.agreement.digest().startswith("sha256:")


@pytest.mark.parametrize("field,value", [("purpose", "観光"), ("dataset_id", "other"),
                                          ("consumer", node_identity_uri("282103", "main")),
                                          ("policy", {"permissions": []}),
                                          ("expires", "2099-01-01T00:00:00+00:00")])
def test_any_change_after_signing_is_detected(mesh, field, value):
    ca, provider, consumer, _ = mesh
    signed = both_signed(provider, consumer)
    tampered = SignedAgreement(dataclasses.replace(signed.agreement, **{field: value}),
                               signed.signatures)
    with pytest.raises(PermissionDenied) as exc:
        verify_signed(tampered, [ca.certificate])
    assert exc.value.code in {"agreement_signature_invalid", "agreement_signer_mismatch"}


def test_missing_countersignature_is_refused(mesh):
    ca, provider, _, _ = mesh
    only_provider = SignedAgreement(agreement(), {}).with_signature("provider", provider)
    verify_signed(only_provider, [ca.certificate], require=("provider",))
    with pytest.raises(PermissionDenied) as exc:
        verify_signed(only_provider, [ca.certificate])
    assert exc.value.code == "agreement_unsigned" and "consumer" in exc.value.message


def test_a_node_cannot_sign_for_the_other_party(mesh):
    ca, provider, consumer, _ = mesh
    with pytest.raises(PermissionDenied):
        SignedAgreement(agreement(), {}).with_signature("provider", consumer)
    # Forge: the consumer's signature placed in the provider's slot.
    signed = both_signed(provider, consumer)
    forged = SignedAgreement(signed.agreement, {"provider": signed.signatures["consumer"],
                                                "consumer": signed.signatures["consumer"]})
    with pytest.raises(PermissionDenied) as exc:
        verify_signed(forged, [ca.certificate])
    assert exc.value.code == "agreement_signer_mismatch"


def test_signature_by_a_rogue_ca_certificate_is_refused(mesh):
    ca, _provider, consumer, tmp = mesh
    rogue_ca = CertificateAuthority.create(tmp / "rogue", mesh_id="t", name="偽物")
    rogue_provider = node(rogue_ca, tmp / "rogue-nodes", "282014")
    forged = (SignedAgreement(agreement(), {}).with_signature("provider", rogue_provider)
              .with_signature("consumer", consumer))
    with pytest.raises(PermissionDenied) as exc:
        verify_signed(forged, [ca.certificate])
    assert exc.value.code == "agreement_signer_untrusted"


def test_signature_bytes_swapped_in_are_refused(mesh):
    ca, provider, consumer, _ = mesh
    a = both_signed(provider, consumer)
    b = both_signed(provider, consumer)  # another agreement, same parties
    mixed = SignedAgreement(a.agreement, {"provider": b.signatures["provider"],
                                          "consumer": a.signatures["consumer"]})
    with pytest.raises(PermissionDenied) as exc:
        verify_signed(mixed, [ca.certificate])
    assert exc.value.code == "agreement_signature_invalid"
    garbage = PartySignature(PROVIDER, a.signatures["provider"].certificate_pem, "!!!not base64")
    with pytest.raises(PermissionDenied):
        verify_signed(SignedAgreement(a.agreement, {**a.signatures, "provider": garbage}),
                      [ca.certificate])


@pytest.mark.parametrize("doc", [{}, {"agreement": {}, "signatures": {}}, [], {"signatures": 1},
                                 {"agreement": {"id": "x"}, "signatures": {}}])
def test_malformed_documents_are_invalid_requests(doc):
    with pytest.raises(InvalidRequest):
        SignedAgreement.from_json(doc)

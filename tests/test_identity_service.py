"""Identity service: linking platform ids, level elevation, pseudonyms, unlink, and every refusal."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from mesh.certs import PeerIdentity
from mesh.clock import iso, utcnow
from mesh.errors import AreameshError, Conflict, InvalidRequest, NotFound, PermissionDenied
from mesh.identity_assertions import (
    IdentityAssertion,
    SignedAssertion,
    issue_assertion,
    sign_assertion,
)
from mesh.keystore import NodeKeyStore
from registry.ca.authority import CertificateAuthority
from registry.identity.pseudonyms import KEY_FILE
from registry.identity.service import IdentityService
from tests.test_agreements import node

HIMEJI, OSAKA, KAKOGAWA, OUTSIDER = "282014", "270008", "282103", "282031"
TAKAHASHI_A = {"name": "髙橋 一郎", "name_kana": "たかはし いちろう", "birth_date": "昭和50年3月1日",
               "sex": "男", "address": "兵庫県姫路市安田四丁目1番地"}
TAKAHASHI_B = {"name": "高橋　一郎", "name_kana": "ﾀｶﾊｼ ｲﾁﾛｳ", "birth_date": "1975-03-01", "sex": "1",
               "address": "姫路市安田4-1"}


@dataclasses.dataclass
class Mesh:
    ca: CertificateAuthority
    nodes: dict[str, NodeKeyStore]
    service: IdentityService
    root: Path

    def issue(self, pid: str, local_id: str, ial: int = 2, aal: int = 2,
              basic4: dict | None = TAKAHASHI_A, **kw) -> str:
        return issue_assertion(self.nodes[pid], local_id=local_id, ial=ial, aal=aal, basic4=basic4,
                               **kw).dumps()

    def crafted(self, pid: str, signer: str | None = None, **changes) -> str:
        """An assertion with ``changes`` applied, signed as it is by ``signer``'s node."""
        base = issue_assertion(self.nodes[pid], local_id="h-1", ial=2, aal=2,
                               basic4=TAKAHASHI_A).assertion
        return sign_assertion(dataclasses.replace(base, **changes),
                              self.nodes[signer or pid]).dumps()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    """One throwaway mesh CA and four node key stores, shared by this module's tests."""
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create(root / "ca", mesh_id="t", name="運営組織")
    return ca, {pid: node(ca, root / "nodes", pid) for pid in (HIMEJI, OSAKA, KAKOGAWA, OUTSIDER)}


@pytest.fixture
async def mesh(pki, tmp_path: Path):
    ca, nodes = pki
    service = await IdentityService.open(tmp_path / "identity", [ca.certificate])
    await service.register_provider(HIMEJI, "はりまID", 3, 3)
    await service.register_provider(OSAKA, "大阪府スマートシティID", 2, 2)
    await service.register_provider(KAKOGAWA, "かこがわアプリ", 3, 2)
    try:
        yield Mesh(ca, nodes, service, tmp_path)
    finally:
        await service.close()


async def snapshot(service: IdentityService) -> tuple:
    """Everything a link or unlink may write (provider rows and events excepted)."""
    tables = ("persons", "linked_ids", "seen_assertions", "pseudonyms")
    rows = [await service.db.fetchall(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables]
    events = await service.store.events()
    return (*(tuple(map(tuple, r)) for r in rows), len(events))


async def test_link_with_spelling_variants_joins_both_ids(mesh: Mesh):
    result = await mesh.service.link(mesh.issue(HIMEJI, "h-1", basic4=TAKAHASHI_A),
                                     mesh.issue(OSAKA, "o-1", basic4=TAKAHASHI_B))
    assert result.created and not result.elevations
    assert {(i.platform, i.local_id) for i in result.ids} == {(HIMEJI, "h-1"), (OSAKA, "o-1")}
    assert {i.person_id for i in result.ids} == {result.person_id}
    levels = await mesh.service.levels(OSAKA, "o-1")
    assert (levels.ial, levels.aal, levels.elevated_from) == (2, 2, None)
    # Linking again with fresh assertions is idempotent: same person.
    again = await mesh.service.link(mesh.issue(OSAKA, "o-1"), mesh.issue(HIMEJI, "h-1"))
    assert again.person_id == result.person_id and not again.created
    kinds = [e.kind for e in await mesh.service.store.events(person_id=result.person_id)]
    assert kinds == ["link"] * 4
    assert await mesh.service.store.verify_events() is None
    # The 基本4情報 are compared, never stored.
    dump = "\n".join(sqlite3.connect(mesh.service.db.path).iterdump())
    assert "高橋" not in dump and "髙橋" not in dump and "1975" not in dump


async def test_higher_provider_raises_the_lower_ids_identity_level(mesh: Mesh):
    result = await mesh.service.link(mesh.issue(HIMEJI, "h-1", ial=3, aal=2),
                                     mesh.issue(OSAKA, "o-1", ial=1, aal=1))
    [elevation] = result.elevations
    assert (elevation.platform, elevation.level, elevation.before, elevation.after,
            elevation.vouched_by) == (OSAKA, "ial", 1, 3, HIMEJI)
    low = await mesh.service.levels(OSAKA, "o-1")
    assert (low.ial, low.aal, low.asserted_ial, low.elevated_from) == (3, 1, 1, HIMEJI)
    high = await mesh.service.levels(HIMEJI, "h-1")
    assert (high.ial, high.aal, high.elevated_from) == (3, 2, None)
    # Re-linking with the same levels keeps the elevation without logging it again.
    again = await mesh.service.link(mesh.issue(HIMEJI, "h-1", ial=3, aal=2),
                                    mesh.issue(OSAKA, "o-1", ial=1, aal=1))
    assert again.elevations == [] and (await mesh.service.levels(OSAKA, "o-1")).ial == 3
    events = await mesh.service.store.events(person_id=result.person_id)
    assert [e.detail for e in events if e.kind == "elevate"] == [
        {"level": "ial", "before": 1, "after": 3, "vouched_by": HIMEJI}]
    # 5-10: both sides' levels against a policy minimum.
    assert (await mesh.service.meets_minimum(OSAKA, "o-1", 3, 1)).allowed
    refused = await mesh.service.meets_minimum(OSAKA, "o-1", 2, 2)
    assert not refused.allowed and refused.code == "levels_insufficient"
    assert refused.details["insufficient"] == ["aal"] and refused.denial().code == "levels_insufficient"
    unknown = await mesh.service.meets_minimum(OSAKA, "nobody", 1, 1)
    assert not unknown.allowed and unknown.code == "levels_unknown"
    ok = await mesh.service.authorise_transfer((HIMEJI, "h-1"), (OSAKA, "o-1"), min_ial=3, min_aal=1)
    assert ok.allowed
    no = await mesh.service.authorise_transfer((HIMEJI, "h-1"), (OSAKA, "o-1"), min_ial=2, min_aal=2)
    assert not no.allowed and no.details["platform"] == OSAKA


async def test_aal_elevation_is_opt_in(mesh: Mesh):
    mesh.service.elevate_aal = True
    result = await mesh.service.link(mesh.issue(HIMEJI, "h-1", ial=3, aal=3),
                                     mesh.issue(OSAKA, "o-1", ial=1, aal=1))
    assert {(e.level, e.after) for e in result.elevations} == {("ial", 3), ("aal", 3)}
    low = await mesh.service.levels(OSAKA, "o-1")
    assert (low.ial, low.aal) == (3, 3)


async def test_pseudonyms_are_pairwise_stable_and_resolve_only_for_their_receiver(mesh: Mesh):
    await mesh.service.link(mesh.issue(HIMEJI, "h-1"), mesh.issue(OSAKA, "o-1"))
    for_kakogawa = await mesh.service.pseudonym(HIMEJI, "h-1", KAKOGAWA)
    for_osaka = await mesh.service.pseudonym(HIMEJI, "h-1", OSAKA)
    assert for_kakogawa != for_osaka
    assert for_kakogawa == await mesh.service.pseudonym(HIMEJI, "h-1", KAKOGAWA)
    assert for_kakogawa == await mesh.service.pseudonym(OSAKA, "o-1", KAKOGAWA)  # one person
    assert for_kakogawa.startswith("pp_") and len(for_kakogawa) == 25
    assert "h-1" not in for_kakogawa and "o-1" not in for_osaka
    # Osaka maps its own pseudonym to its own local id; nobody maps another's pseudonym.
    assert await mesh.service.resolve(for_osaka, OSAKA) == "o-1"
    for pseudonym, caller in ((for_kakogawa, OSAKA), (for_osaka, HIMEJI), (for_kakogawa, KAKOGAWA),
                              ("pp_nonsense", OSAKA)):
        with pytest.raises(NotFound) as exc:
            await mesh.service.resolve(pseudonym, caller)
        assert exc.value.code == "pseudonym_unknown"
    with pytest.raises(NotFound) as exc:
        await mesh.service.pseudonym(HIMEJI, "unknown", KAKOGAWA)
    assert exc.value.code == "id_not_linked"
    key = mesh.root / "identity" / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # The same key after a restart: the same pseudonyms.
    await mesh.service.close()
    mesh.service = await IdentityService.open(mesh.root / "identity", [mesh.ca.certificate])
    assert await mesh.service.pseudonym(HIMEJI, "h-1", KAKOGAWA) == for_kakogawa


async def test_unlink_removes_the_id_and_undoes_its_vouching(mesh: Mesh):
    await mesh.service.link(mesh.issue(HIMEJI, "h-1", ial=3), mesh.issue(OSAKA, "o-1", ial=1))
    wrong_purpose = mesh.issue(HIMEJI, "h-1")
    with pytest.raises(InvalidRequest) as exc:
        await mesh.service.unlink(HIMEJI, "h-1", wrong_purpose)
    assert exc.value.code == "assertion_wrong_purpose"
    with pytest.raises(PermissionDenied) as exc:
        await mesh.service.unlink(HIMEJI, "h-1", mesh.issue(HIMEJI, "h-2", purpose="unlink"))
    assert exc.value.code == "assertion_subject_mismatch"
    proof = mesh.issue(HIMEJI, "h-1", basic4=None, purpose="unlink")
    result = await mesh.service.unlink(HIMEJI, "h-1", proof)
    assert [(i.platform, i.local_id) for i in result.remaining] == [(OSAKA, "o-1")]
    assert [(e.platform, e.before, e.after) for e in result.reverted] == [(OSAKA, 3, 1)]
    with pytest.raises(NotFound):
        await mesh.service.levels(HIMEJI, "h-1")
    low = await mesh.service.levels(OSAKA, "o-1")
    assert (low.ial, low.elevated_from) == (1, None)
    with pytest.raises(PermissionDenied) as exc:
        await mesh.service.unlink(HIMEJI, "h-1", proof)
    assert exc.value.code == "assertion_replayed"
    with pytest.raises(NotFound) as exc:
        await mesh.service.unlink(HIMEJI, "h-9", mesh.issue(HIMEJI, "h-9", purpose="unlink"))
    assert exc.value.code == "id_not_linked"
    kinds = [e.kind for e in await mesh.service.store.events(person_id=result.person_id)]
    assert kinds == ["link", "link", "elevate", "unlink"]


async def test_linking_ids_of_two_persons_merges_them_into_the_older(mesh: Mesh):
    await mesh.service.register_provider(OUTSIDER, "たつのID", 2, 2)  # a fourth platform
    first = await mesh.service.link(mesh.issue(HIMEJI, "h-1"), mesh.issue(OSAKA, "o-1"))
    await mesh.service.pseudonym(OSAKA, "o-1", HIMEJI)
    second = await mesh.service.link(mesh.issue(KAKOGAWA, "k-1"), mesh.issue(OUTSIDER, "x-1"))
    merged = await mesh.service.link(mesh.issue(KAKOGAWA, "k-1"), mesh.issue(HIMEJI, "h-1"))
    assert merged.person_id == first.person_id and merged.merged_from == second.person_id
    assert len(merged.ids) == 4
    # A person holds one id per platform: a second Himeji id is a conflict, and nothing changes.
    before = await snapshot(mesh.service)
    with pytest.raises(Conflict) as exc:
        await mesh.service.link(mesh.issue(HIMEJI, "h-2"), mesh.issue(OSAKA, "o-1"))
    assert exc.value.code == "platform_already_linked"
    assert await snapshot(mesh.service) == before


def bad_inputs():
    """(name, first assertion factory, second assertion factory, error class, code)."""
    past = utcnow() - timedelta(minutes=20)
    return [
        ("expired", lambda m: m.issue(HIMEJI, "h-1", now=past), None, PermissionDenied,
         "assertion_expired"),
        ("not_yet_valid", lambda m: m.issue(HIMEJI, "h-1", now=utcnow() + timedelta(minutes=5)),
         None, PermissionDenied, "assertion_not_yet_valid"),
        ("too_long", lambda m: m.crafted(HIMEJI, expires_at=iso(utcnow() + timedelta(hours=1))),
         None, InvalidRequest, "assertion_lifetime_invalid"),
        ("non_idp", lambda m: m.issue(OUTSIDER, "x-1"), None, PermissionDenied,
         "not_identity_provider"),
        ("tampered", lambda m: _tamper(m.issue(HIMEJI, "h-1"), local_id="h-2"), None,
         PermissionDenied, "assertion_signature_invalid"),
        ("tampered_level", lambda m: _tamper(m.issue(OSAKA, "o-1", ial=1), ial=2), None,
         PermissionDenied, "assertion_signature_invalid"),
        ("signed_by_other_node", lambda m: m.crafted(HIMEJI, signer=OSAKA), None,
         PermissionDenied, "assertion_issuer_mismatch"),
        ("other_platform", lambda m: m.crafted(HIMEJI, platform=KAKOGAWA), None,
         PermissionDenied, "assertion_platform_mismatch"),
        ("rogue_ca", lambda m: _rogue(m), None, PermissionDenied, "assertion_signer_untrusted"),
        ("ial_0", lambda m: m.crafted(HIMEJI, ial=0), None, InvalidRequest, "level_out_of_range"),
        ("aal_4", lambda m: m.crafted(HIMEJI, aal=4), None, InvalidRequest, "level_out_of_range"),
        ("ial_above_max", lambda m: m.crafted(OSAKA, ial=3), None, PermissionDenied,
         "level_exceeds_provider_max"),
        ("aal_above_max", lambda m: m.crafted(KAKOGAWA, aal=3), None, PermissionDenied,
         "level_exceeds_provider_max"),
        ("basic4_mismatch", None, lambda m: m.issue(OSAKA, "o-1", basic4={
            **TAKAHASHI_B, "birth_date": "1975-03-02", "name": "高橋二郎"}), PermissionDenied,
         "basic4_mismatch"),
        ("basic4_missing", None, lambda m: m.issue(OSAKA, "o-1", basic4=None), InvalidRequest,
         "basic4_missing"),
        ("basic4_thin", lambda m: m.issue(HIMEJI, "h-1", basic4={"name": "高橋一郎",
                                                                 "birth_date": "1975-03-01"}),
         None, InvalidRequest, "basic4_insufficient"),
        ("basic4_unreadable", None, lambda m: m.issue(OSAKA, "o-1", basic4={
            **TAKAHASHI_B, "birth_date": "1975-02-30"}), InvalidRequest, "basic4_invalid"),
        ("same_platform", None, lambda m: m.issue(HIMEJI, "h-2"), InvalidRequest, "same_platform"),
        ("unlink_purpose", lambda m: m.issue(HIMEJI, "h-1", purpose="unlink"), None,
         InvalidRequest, "assertion_wrong_purpose"),
        ("not_json", lambda m: "{not json", None, InvalidRequest, "malformed_assertion"),
        ("wrong_type", lambda m: _edit(m.issue(HIMEJI, "h-1"), type="other/v1"), None,
         InvalidRequest, "malformed_assertion"),
        ("bool_level", lambda m: _edit(m.issue(HIMEJI, "h-1"), ial=True), None, InvalidRequest,
         "malformed_assertion"),
    ]


def _edit(text: str, **changes) -> str:
    doc = json.loads(text)
    doc["assertion"].update(changes)
    return json.dumps(doc, ensure_ascii=False)


def _tamper(text: str, **changes) -> str:
    return _edit(text, **changes)


def _rogue(m: Mesh) -> str:
    rogue = CertificateAuthority.create(m.root / "rogue", mesh_id="t", name="偽物")
    return issue_assertion(node(rogue, m.root / "rogue-nodes", HIMEJI), local_id="h-1", ial=2,
                           aal=2, basic4=TAKAHASHI_A).dumps()


@pytest.mark.parametrize("name,first,second,error,code", bad_inputs(), ids=[b[0] for b in bad_inputs()])
async def test_bad_input_is_refused_and_links_nothing(mesh: Mesh, name, first, second, error, code):
    a = first(mesh) if first else mesh.issue(HIMEJI, "h-1")
    b = second(mesh) if second else mesh.issue(OSAKA, "o-1", basic4=TAKAHASHI_B)
    before = await snapshot(mesh.service)
    with pytest.raises(error) as exc:
        await mesh.service.link(a, b)
    assert exc.value.code == code, exc.value.message
    assert exc.value.message and exc.value.message_ja
    assert await snapshot(mesh.service) == before
    if code == "basic4_mismatch":
        assert exc.value.details["fields"] == ["name", "birth_date"]
    for platform, local_id in ((HIMEJI, "h-1"), (OSAKA, "o-1")):
        with pytest.raises(NotFound):
            await mesh.service.levels(platform, local_id)


async def test_a_used_assertion_is_refused_and_changes_nothing(mesh: Mesh):
    a = mesh.issue(HIMEJI, "h-1")
    await mesh.service.link(a, mesh.issue(OSAKA, "o-1"))
    before = await snapshot(mesh.service)
    with pytest.raises(PermissionDenied) as exc:
        await mesh.service.link(a, mesh.issue(KAKOGAWA, "k-1"))
    assert exc.value.code == "assertion_replayed" and exc.value.details["platform"] == HIMEJI
    assert await snapshot(mesh.service) == before
    with pytest.raises(NotFound):
        await mesh.service.levels(KAKOGAWA, "k-1")


async def test_a_revoked_signer_is_refused(mesh: Mesh):
    revoked = mesh.nodes[OSAKA].certificate().serial_number

    class Revoked:
        async def check(self, identity: PeerIdentity) -> None:
            if identity.serial == revoked:
                raise PermissionDenied("revoked", code="certificate_revoked")

    mesh.service.revocation = Revoked()
    before = await snapshot(mesh.service)
    with pytest.raises(PermissionDenied) as exc:
        await mesh.service.link(mesh.issue(HIMEJI, "h-1"), mesh.issue(OSAKA, "o-1"))
    assert exc.value.code == "certificate_revoked"
    assert await snapshot(mesh.service) == before


async def test_used_assertion_ids_are_forgotten_after_expiry(mesh: Mesh):
    await mesh.service.link(mesh.issue(HIMEJI, "h-1"), mesh.issue(OSAKA, "o-1"))
    assert len(await mesh.service.db.fetchall("SELECT * FROM seen_assertions")) == 2
    later = utcnow() + timedelta(minutes=30)
    await mesh.service.link(mesh.issue(HIMEJI, "h-1", now=later), mesh.issue(OSAKA, "o-1", now=later),
                            now=later + timedelta(seconds=1))
    assert len(await mesh.service.db.fetchall("SELECT * FROM seen_assertions")) == 2


async def test_event_log_detects_tampering(mesh: Mesh):
    await mesh.service.link(mesh.issue(HIMEJI, "h-1", ial=3), mesh.issue(OSAKA, "o-1", ial=1))
    assert await mesh.service.store.verify_events() is None
    async with mesh.service.db.transaction() as conn:
        await conn.execute("UPDATE events SET detail_json = '{}' WHERE kind = 'elevate'")
    bad = await mesh.service.store.verify_events()
    assert bad is not None and bad > 1


@pytest.mark.parametrize("args,code", [
    (("12345", "x", 2, 2), "invalid_participant_id"),
    ((HIMEJI, " ", 2, 2), "invalid_platform_name"),
    ((HIMEJI, "x", 4, 2), "level_out_of_range"),
    ((HIMEJI, "x", 2, 0), "level_out_of_range"),
])
async def test_provider_registration_is_validated(mesh: Mesh, args, code):
    with pytest.raises(AreameshError) as exc:
        await mesh.service.register_provider(*args)
    assert exc.value.code == code


def test_issuing_refuses_bad_parameters(tmp_path: Path):
    ca = CertificateAuthority.create(tmp_path / "ca", mesh_id="t", name="運営組織")
    ks = node(ca, tmp_path, HIMEJI)
    with pytest.raises(InvalidRequest):
        issue_assertion(ks, local_id="h-1", ial=4, aal=1)
    with pytest.raises(ValueError):
        issue_assertion(ks, local_id="h-1", ial=1, aal=1, lifetime=timedelta(minutes=11))
    signed = issue_assertion(ks, local_id="h-1", ial=1, aal=1)
    again = SignedAssertion.parse(signed.dumps())
    assert again == signed and isinstance(again.assertion, IdentityAssertion)
    assert again.assertion.issued < again.assertion.expires <= again.assertion.issued + timedelta(
        minutes=5)

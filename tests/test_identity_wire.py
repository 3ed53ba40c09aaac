"""The identity service on the wire: a real registry process, connectors of two platforms
(姫路市 and 大阪府) enrolled as identity providers, assertions signed with their node keys, and
IdentityService called over mTLS with each node's own credentials."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mesh.clock import utcnow
from mesh.identity_assertions import issue_assertion
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import identity_pb2, identity_pb2_grpc
from registry.identity.grpc_service import SERVICE_NAME

from .conftest import MeshHarness

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

HIMEJI, OSAKA, KAKOGAWA, TATSUNO = "282014", "270008", "282103", "282294"
NODES = {HIMEJI: "himeji", OSAKA: "osaka", KAKOGAWA: "kakogawa"}
# One resident as two platforms hold them: 異体字 (髙/高), kana vs half-width katakana, width,
# 和暦 vs ISO dates, sex as text vs code, and two address notations.
TAKAHASHI_A = {"name": "髙橋 一郎", "name_kana": "たかはし いちろう", "birth_date": "昭和50年3月1日",
               "sex": "男", "address": "兵庫県姫路市安田四丁目1番地"}
TAKAHASHI_B = {"name": "高橋　一郎", "name_kana": "ﾀｶﾊｼ ｲﾁﾛｳ", "birth_date": "1975-03-01", "sex": "1",
               "address": "姫路市安田4-1"}
OK, DENIED, INVALID, NOT_FOUND = (grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED,
                                  grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


@dataclass
class IdentityMesh:
    harness: MeshHarness
    stubs: dict[str, identity_pb2_grpc.IdentityServiceStub]
    keys: dict[str, NodeKeyStore]
    channels: list[grpc.aio.Channel]

    def issue(self, pid: str, local_id: str, *, ial: int = 2, aal: int = 2,
              basic4: dict | None = TAKAHASHI_A, **kw) -> bytes:
        """A link (or unlink) assertion signed in this process with the node's own key."""
        return issue_assertion(self.keys[pid], local_id=local_id, ial=ial, aal=aal, basic4=basic4,
                               **kw).dumps().encode()

    async def cli(self, *args: str) -> tuple[int, str, str]:
        return await self.harness.cli("registry", *args, "--data-dir",
                                      str(self.harness.registry_dir))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory) -> IdentityMesh:
    h = MeshHarness(tmp_path_factory.mktemp("identity"))
    channels: list[grpc.aio.Channel] = []
    await h.init_registry()
    try:
        for pid in (HIMEJI, OSAKA):
            rc, _, err = await h.cli("registry", "participant", "certify", "--data-dir",
                                     str(h.registry_dir), "--id", pid)
            assert rc == 0, err
        await h.start_registry()
        await asyncio.gather(*(h.enrol(name, pid) for pid, name in NODES.items()))
        m = IdentityMesh(h, {}, {pid: NodeKeyStore(h.root / name / "tls")
                                 for pid, name in NODES.items()}, channels)
        # Registered while the registry runs: the running service sees them at once.
        for pid, platform, ial, aal in ((HIMEJI, "はりまID", 3, 3), (OSAKA, "大阪府スマートシティID", 2, 2)):
            rc, out, err = await m.cli("identity-provider", "add", "--participant", pid,
                                       "--platform", platform, "--max-ial", str(ial),
                                       "--max-aal", str(aal))
            assert rc == 0 and "registered" in out, err
        for pid, name in NODES.items():
            channel = h.registry_channel(h.node_credentials(name))
            channels.append(channel)
            m.stubs[pid] = identity_pb2_grpc.IdentityServiceStub(channel)
        yield m
    finally:
        for channel in channels:
            await channel.close()
        await h.stop_all()


async def call(rpc, request) -> tuple[grpc.StatusCode, object]:
    """(status, reply or the status details text)."""
    try:
        return OK, await rpc(request, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details()


async def refused(rpc, request, status: grpc.StatusCode, reason: str) -> None:
    code, details = await call(rpc, request)
    assert (code, str(details).split(":")[0]) == (status, reason), details


async def linked(m: IdentityMesh, pid: str, local_id: str) -> bool:
    code, _ = await call(m.stubs[pid].GetLevels, identity_pb2.GetLevelsRequest(local_id=local_id))
    assert code in (OK, NOT_FOUND)
    return code == OK


async def test_link_with_spelling_variants_and_pairwise_pseudonyms(mesh: IdentityMesh):
    m = mesh
    reply = await m.stubs[HIMEJI].Link(identity_pb2.LinkRequest(
        assertion_a=m.issue(HIMEJI, "h-1", ial=3, basic4=TAKAHASHI_A),
        assertion_b=m.issue(OSAKA, "o-1", ial=1, aal=1, basic4=TAKAHASHI_B)), timeout=10)
    assert reply.created and not reply.merged
    assert {(i.platform, i.local_id, i.ial) for i in reply.linked} == {(HIMEJI, "h-1", 3),
                                                                        (OSAKA, "o-1", 3)}
    [e] = reply.elevations
    assert (e.platform, e.level, e.before, e.after, e.vouched_by) == (OSAKA, "ial", 1, 3, HIMEJI)
    # No internal person id anywhere in the reply: the caller's own pseudonym instead.
    assert "person" not in json.dumps([f.name for f in identity_pb2.LinkResponse.DESCRIPTOR.fields])
    assert reply.pseudonym.startswith("pp_") and len(reply.pseudonym) == 25

    async def pseudonym(caller: str, local_id: str, receiver: str = "") -> str:
        r = await m.stubs[caller].GetPseudonym(identity_pb2.GetPseudonymRequest(
            local_id=local_id, for_participant=receiver), timeout=10)
        assert r.for_participant == (receiver or caller)
        return r.pseudonym

    for_himeji, for_osaka = await pseudonym(HIMEJI, "h-1"), await pseudonym(OSAKA, "o-1")
    assert for_himeji == reply.pseudonym and for_himeji != for_osaka          # pairwise
    assert await pseudonym(OSAKA, "o-1") == for_osaka                          # stable
    # Both platforms hand a third participant the same pseudonym: it is one person.
    assert await pseudonym(HIMEJI, "h-1", KAKOGAWA) == await pseudonym(OSAKA, "o-1", KAKOGAWA)
    # Each caller resolves only its own pseudonym, and only to its own local id.
    resolved = await m.stubs[OSAKA].ResolvePseudonym(
        identity_pb2.ResolvePseudonymRequest(pseudonym=for_osaka), timeout=10)
    assert (resolved.platform, resolved.local_id) == (OSAKA, "o-1")
    await refused(m.stubs[HIMEJI].ResolvePseudonym,
                  identity_pb2.ResolvePseudonymRequest(pseudonym=for_osaka), NOT_FOUND,
                  "pseudonym_unknown")
    # Levels of the caller's own id, with a policy decision (5-10).
    levels = await m.stubs[OSAKA].GetLevels(identity_pb2.GetLevelsRequest(
        local_id="o-1", min_ial=2, min_aal=2), timeout=10)
    assert (levels.levels.ial, levels.levels.aal, levels.levels.asserted_ial,
            levels.levels.elevated_from) == (3, 1, 1, HIMEJI)
    assert (levels.decision.allowed, levels.decision.code) == (False, "levels_insufficient")
    assert levels.decision.message_ja
    plain = await m.stubs[HIMEJI].GetLevels(identity_pb2.GetLevelsRequest(local_id="h-1"),
                                           timeout=10)
    assert plain.levels.ial == 3 and not plain.HasField("decision")
    # Health and reflection name the service, as for RegistryService.
    health = health_pb2_grpc.HealthStub(m.channels[0])
    status = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    stream = reflection_pb2_grpc.ServerReflectionStub(m.channels[0]).ServerReflectionInfo(timeout=10)
    await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    listed = await stream.read()
    await stream.done_writing()
    assert SERVICE_NAME in {s.name for s in listed.list_services_response.service}


async def test_callers_may_ask_only_about_their_own_platform(mesh: IdentityMesh):
    m = mesh
    await m.stubs[OSAKA].Link(identity_pb2.LinkRequest(
        assertion_a=m.issue(OSAKA, "o-own", basic4=TAKAHASHI_B),
        assertion_b=m.issue(HIMEJI, "h-own")), timeout=10)
    osaka = m.stubs[OSAKA]
    await refused(osaka.GetPseudonym, identity_pb2.GetPseudonymRequest(
        platform=HIMEJI, local_id="h-own"), DENIED, "not_own_platform")
    await refused(osaka.GetPseudonym, identity_pb2.GetPseudonymRequest(local_id="h-own"),
                  NOT_FOUND, "id_not_linked")  # Osaka has no id "h-own" of its own
    await refused(osaka.GetLevels, identity_pb2.GetLevelsRequest(platform=HIMEJI, local_id="h-own"),
                  DENIED, "not_own_platform")
    await refused(osaka.GetPseudonym, identity_pb2.GetPseudonymRequest(
        local_id="o-own", for_participant=TATSUNO), NOT_FOUND, "not_found")  # not a participant
    # An enrolled but uncertified participant may not use the service at all.
    kakogawa = m.stubs[KAKOGAWA]
    await refused(kakogawa.GetPseudonym, identity_pb2.GetPseudonymRequest(local_id="k-1"),
                  DENIED, "participant_not_certified")
    await refused(kakogawa.Link, identity_pb2.LinkRequest(
        assertion_a=m.issue(OSAKA, "o-k", basic4=TAKAHASHI_B), assertion_b=m.issue(HIMEJI, "h-k")),
        DENIED, "participant_not_certified")
    assert not await linked(m, OSAKA, "o-k")


def bad_links():
    """(name, factory of (assertion a, assertion b) → ids that must stay unlinked, status, code)."""
    past = utcnow() - timedelta(minutes=20)
    return [
        ("expired", lambda m, t: (m.issue(HIMEJI, f"h-{t}", now=past),
                                  m.issue(OSAKA, f"o-{t}", basic4=TAKAHASHI_B)),
         DENIED, "assertion_expired"),
        ("not_identity_provider", lambda m, t: (m.issue(KAKOGAWA, f"k-{t}"),
                                                m.issue(OSAKA, f"o-{t}", basic4=TAKAHASHI_B)),
         DENIED, "not_identity_provider"),
        ("basic4_mismatch", lambda m, t: (m.issue(HIMEJI, f"h-{t}"), m.issue(OSAKA, f"o-{t}", basic4={
            **TAKAHASHI_B, "name": "高橋 二郎", "birth_date": "1975-03-02"})),
         DENIED, "basic4_mismatch"),
        ("tampered", lambda m, t: (_edit(m.issue(HIMEJI, f"h-{t}"), ial=3),
                                   m.issue(OSAKA, f"o-{t}", basic4=TAKAHASHI_B)),
         DENIED, "assertion_signature_invalid"),
        ("unlink_assertion", lambda m, t: (m.issue(HIMEJI, f"h-{t}", purpose="unlink"),
                                           m.issue(OSAKA, f"o-{t}", basic4=TAKAHASHI_B)),
         INVALID, "assertion_wrong_purpose"),
        ("malformed", lambda m, t: (b"{not json", m.issue(OSAKA, f"o-{t}", basic4=TAKAHASHI_B)),
         INVALID, "malformed_assertion"),
    ]


def _edit(raw: bytes, **changes) -> bytes:
    doc = json.loads(raw)
    doc["assertion"].update(changes)
    return json.dumps(doc, ensure_ascii=False).encode()


@pytest.mark.parametrize("name,make,status,code", bad_links(), ids=[b[0] for b in bad_links()])
async def test_bad_link_is_refused_with_its_code_and_links_nothing(mesh: IdentityMesh, name, make,
                                                                   status, code):
    a, b = make(mesh, name)
    await refused(mesh.stubs[HIMEJI].Link, identity_pb2.LinkRequest(assertion_a=a, assertion_b=b),
                  status, code)
    assert not await linked(mesh, HIMEJI, f"h-{name}")
    assert not await linked(mesh, OSAKA, f"o-{name}")


async def test_a_replayed_assertion_is_refused_and_links_nothing(mesh: IdentityMesh):
    m = mesh
    used = m.issue(HIMEJI, "h-replay")
    await m.stubs[HIMEJI].Link(identity_pb2.LinkRequest(
        assertion_a=used, assertion_b=m.issue(OSAKA, "o-replay", basic4=TAKAHASHI_B)), timeout=10)
    # Captured and sent again by another participant, with a fresh assertion of another id.
    await refused(m.stubs[OSAKA].Link, identity_pb2.LinkRequest(
        assertion_a=used, assertion_b=m.issue(OSAKA, "o-replay-2", basic4=TAKAHASHI_B)),
        DENIED, "assertion_replayed")
    assert not await linked(m, OSAKA, "o-replay-2")


async def test_unlink_on_request(mesh: IdentityMesh):
    m = mesh
    await m.stubs[HIMEJI].Link(identity_pb2.LinkRequest(
        assertion_a=m.issue(HIMEJI, "h-unlink", ial=3),
        assertion_b=m.issue(OSAKA, "o-unlink", ial=1, basic4=TAKAHASHI_B)), timeout=10)
    await refused(m.stubs[HIMEJI].Unlink, identity_pb2.UnlinkRequest(
        platform=HIMEJI, local_id="h-unlink", assertion=m.issue(HIMEJI, "h-unlink")),
        INVALID, "assertion_wrong_purpose")
    await refused(m.stubs[HIMEJI].Unlink, identity_pb2.UnlinkRequest(
        platform=HIMEJI, local_id="h-unlink",
        assertion=m.issue(OSAKA, "o-unlink", basic4=None, purpose="unlink")),
        DENIED, "assertion_subject_mismatch")
    proof = m.issue(HIMEJI, "h-unlink", basic4=None, purpose="unlink")
    # The proof is the assertion: any certified participant may carry it.
    reply = await m.stubs[OSAKA].Unlink(identity_pb2.UnlinkRequest(
        platform=HIMEJI, local_id="h-unlink", assertion=proof), timeout=10)
    assert (reply.platform, reply.local_id, reply.remaining, reply.reverted) == (
        HIMEJI, "h-unlink", 1, 1)
    assert not await linked(m, HIMEJI, "h-unlink")
    levels = await m.stubs[OSAKA].GetLevels(identity_pb2.GetLevelsRequest(local_id="o-unlink"),
                                           timeout=10)
    assert (levels.levels.ial, levels.levels.elevated_from) == (1, "")  # the vouching is undone
    await refused(m.stubs[HIMEJI].Unlink, identity_pb2.UnlinkRequest(
        platform=HIMEJI, local_id="h-unlink", assertion=proof), DENIED, "assertion_replayed")


async def test_identity_provider_cli(mesh: IdentityMesh):
    m = mesh
    rc, out, err = await m.cli("identity-provider", "list")
    assert rc == 0, err
    rows = sorted(line.split("\t") for line in out.splitlines())
    assert [(r[0], r[1], r[2], r[-1]) for r in rows] == [
        (OSAKA, "ial<=2", "aal<=2", "大阪府スマートシティID"), (HIMEJI, "ial<=3", "aal<=3", "はりまID")]
    rc, out, err = await m.cli("identity-provider", "add", "--participant", KAKOGAWA,
                               "--platform", "かこがわアプリ", "--max-ial", "2", "--max-aal", "2")
    assert rc == 1 and "participant_not_certified" in err and "認定されていません" in err, (out, err)
    rc, out, err = await m.cli("identity-provider", "add", "--participant", TATSUNO,
                               "--platform", "たつのID", "--max-ial", "2", "--max-aal", "2")
    assert rc == 1 and "unknown participant" in err, (out, err)
    rc, out, err = await m.cli("identity-provider", "add", "--participant", HIMEJI,
                               "--platform", "はりまID", "--max-ial", "4", "--max-aal", "2")
    assert rc == 2 and "--max-ial" in err
    rc, out, _ = await m.cli("identity-provider", "list")
    assert KAKOGAWA not in out and TATSUNO not in out and len(out.splitlines()) == 2


async def test_transfer_levels_per_record_name_no_target_id(mesh: IdentityMesh):
    """5-10: 姫路市 asks, for each resident of a batch, their levels at home and those of the same
    person's id at 大阪府; ids never linked, or linked nowhere in 大阪府, say so."""
    m = mesh
    await m.stubs[HIMEJI].Link(identity_pb2.LinkRequest(
        assertion_a=m.issue(HIMEJI, "h-lv", ial=2, aal=3),
        assertion_b=m.issue(OSAKA, "o-lv", ial=1, aal=2, basic4=TAKAHASHI_B)), timeout=10)
    reply = await m.stubs[HIMEJI].CheckTransferLevels(identity_pb2.CheckTransferLevelsRequest(
        target_platform=OSAKA, local_ids=["h-lv", "h-never", "h-lv"]), timeout=10)
    first, never, again = reply.levels
    # 大阪府's id was raised to IAL 2 by 姫路市 vouching at link time; AAL stays its own
    assert (first.source_known, first.source_ial, first.source_aal) == (True, 2, 3)
    assert (first.linked, first.target_ial, first.target_aal) == (True, 2, 2)
    assert (never.source_known, never.linked) == (False, False) and again == first
    assert "local_id" not in {f.name for f in identity_pb2.TransferLevels.DESCRIPTOR.fields}
    # asked the other way, 大阪府 learns about its own ids only
    back = await m.stubs[OSAKA].CheckTransferLevels(identity_pb2.CheckTransferLevelsRequest(
        target_platform=HIMEJI, local_ids=["o-lv", "h-lv"]), timeout=10)
    assert [lv.source_known for lv in back.levels] == [True, False]
    # a receiver that is not a platform, a missing target, too many ids, an uncertified caller
    await refused(m.stubs[HIMEJI].CheckTransferLevels, identity_pb2.CheckTransferLevelsRequest(
        target_platform=KAKOGAWA, local_ids=["h-lv"]), NOT_FOUND, "target_not_a_platform")
    await refused(m.stubs[HIMEJI].CheckTransferLevels, identity_pb2.CheckTransferLevelsRequest(
        local_ids=["h-lv"]), INVALID, "missing_field")
    await refused(m.stubs[HIMEJI].CheckTransferLevels, identity_pb2.CheckTransferLevelsRequest(
        target_platform=OSAKA, local_ids=[f"h-{i}" for i in range(100_001)]), INVALID, "too_many_ids")
    await refused(m.stubs[KAKOGAWA].CheckTransferLevels, identity_pb2.CheckTransferLevelsRequest(
        target_platform=OSAKA, local_ids=["h-lv"]), DENIED, "participant_not_certified")

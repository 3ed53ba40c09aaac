"""ConsentService on the wire: 姫路市's connector holds a personal dataset; 加古川市 and 大阪府 call
it over mTLS with their own node credentials to record, list and withdraw residents' consent,
each proven by an assertion that 姫路市's platform signed for the resident."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import pytest_asyncio
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

from mesh.clock import utcnow
from mesh.identity_assertions import IdentityAssertion, issue_assertion, sign_assertion
from mesh.ids import node_dns_name
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import consent_pb2, consent_pb2_grpc

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MESH_ID, MeshHarness
from .test_personal_transfer import personal_doc, write_checkups
from .transfer_fixtures import fetch_cli, ndjson_rows

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

HIMEJI, KAKOGAWA, OSAKA = "282014", "282103", "270008"
DATASET = "himeji-health-checkups"


@dataclass
class ConsentMesh:
    harness: MeshHarness
    stubs: dict[str, consent_pb2_grpc.ConsentServiceStub]
    keys: dict[str, NodeKeyStore]
    channels: list[grpc.aio.Channel]

    def assertion(self, resident: str, *, by: str = "himeji", purpose: str = "consent",
                  **kw) -> bytes:
        return issue_assertion(self.keys[by], local_id=resident, ial=2, aal=2, purpose=purpose,
                               **kw).dumps().encode()

    async def grant(self, caller: str, resident: str, *, assertion: bytes | None = None,
                    **fields) -> consent_pb2.ConsentRecord:
        fields.setdefault("dataset_id", DATASET)
        fields.setdefault("purpose", "研究")
        return await self.stubs[caller].GrantConsent(consent_pb2.GrantConsentRequest(
            resident_assertion=assertion if assertion is not None else self.assertion(resident),
            **fields), timeout=20)


async def code_of(call) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory) -> ConsentMesh:
    h = MeshHarness(tmp_path_factory.mktemp("consent-wire"))
    channels: list[grpc.aio.Channel] = []
    await h.init_registry()
    try:
        await setup_catalog_mesh(h, certify=(OSAKA, HIMEJI, KAKOGAWA), publish=False)
        source = h.root / "checkups.csv"
        write_checkups(source, residents=20)
        desc = h.root / "checkups.yaml"
        desc.write_text(yaml.safe_dump(personal_doc(source), allow_unicode=True), encoding="utf-8")
        rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "himeji"),
                                 "--file", str(desc))
        assert rc == 0, err
        himeji = await h.start_connector("himeji")
        endpoint = f"127.0.0.1:{himeji.ready['grpc_port']}"
        stubs = {}
        for name in ("kakogawa", "osaka", "himeji"):
            ch = grpc.aio.secure_channel(endpoint, h.node_credentials(name), options=[
                ("grpc.ssl_target_name_override", node_dns_name(HIMEJI, "main", MESH_ID))])
            channels.append(ch)
            stubs[name] = consent_pb2_grpc.ConsentServiceStub(ch)
        yield ConsentMesh(h, stubs, {n: NodeKeyStore(h.root / n / "tls")
                                     for n in ("himeji", "osaka", "kakogawa")}, channels)
    finally:
        for ch in channels:
            await ch.close()
        await h.stop_all()


async def test_a_relayed_consent_is_recorded_for_the_caller_and_lets_its_records_flow(mesh):
    h = mesh.harness
    record = await mesh.grant("kakogawa", "R0001", service_id="kenko-app")
    assert (record.resident, record.participant, record.dataset_id, record.purpose) == \
        ("R0001", KAKOGAWA, DATASET, "研究")
    assert record.status == "active" and record.all_items and record.service_id == "kenko-app"
    # the evidence names the assertion, the resident's levels and who relayed it
    rc, out, err = await h.cli("connector", "consent", "history", "--data-dir", str(h.root / "himeji"),
                               "--resident", "R0001", "--json")
    assert rc == 0, err
    [granted] = [e for e in json.loads(out) if e["event"] == "granted"]
    assert granted["actor"].startswith("mesh:urn:areamesh:org:282103:")
    assert granted["detail"]["proof"]["aal"] == 2
    assert granted["detail"]["proof"]["issuer"].startswith("urn:areamesh:org:282014:")

    # without a service: the consent covers every service of 加古川市, so a transfer flows
    await mesh.grant("kakogawa", "R0002")
    rc, out, err = await h.cli("connector", "contract", "request", "--data-dir", str(h.root / "kakogawa"),
                               "--dataset", DATASET, "--offer", "research-with-consent",
                               "--purpose", "研究")
    assert rc == 0 and "FINALIZED" in out, err
    agreement = out.split("agreement ")[1].split()[0]
    rc, _, err = await fetch_cli(h, agreement, h.root / "got" / "a.ndjson")
    assert rc == 0, err
    assert {r["住民ID"] for r in ndjson_rows(h.root / "got" / "a.ndjson")} == {"R0002"}

    # 加古川市 lists what was given to it; 大阪府 sees none of it
    listed = await mesh.stubs["kakogawa"].ListConsents(consent_pb2.ListConsentsRequest(), timeout=10)
    assert {c.resident for c in listed.consents} >= {"R0001", "R0002"}
    assert all(c.participant == KAKOGAWA for c in listed.consents)
    theirs = await mesh.stubs["osaka"].ListConsents(consent_pb2.ListConsentsRequest(), timeout=10)
    assert [c for c in theirs.consents if c.participant == KAKOGAWA] == []

    # the resident withdraws at 加古川市's portal; it relays the withdrawal; the next fetch leaves them out
    gone = await mesh.stubs["kakogawa"].WithdrawConsent(consent_pb2.WithdrawConsentRequest(
        resident="R0002", reason="本人の申出"), timeout=10)
    assert len(gone.withdrawn) == 1
    rc, _, err = await fetch_cli(h, agreement, h.root / "got" / "b.ndjson")
    assert rc == 0, err
    assert ndjson_rows(h.root / "got" / "b.ndjson") == []


async def test_items_and_expiry_travel_with_the_consent(mesh):
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    expires = Timestamp()
    expires.FromDatetime(until)
    record = await mesh.grant("osaka", "R0003", items=["受診日"], expires_at=expires)
    assert list(record.items) == ["受診日"] and not record.all_items
    assert datetime.fromisoformat(record.expires_at) == until
    listed = await mesh.stubs["osaka"].ListConsents(
        consent_pb2.ListConsentsRequest(resident="R0003", active_only=True), timeout=10)
    assert [c.id for c in listed.consents] == [record.id]


async def test_a_caller_cannot_touch_consents_given_to_someone_else(mesh):
    record = await mesh.grant("kakogawa", "R0004")
    code, details = await code_of(mesh.stubs["osaka"].WithdrawConsent(
        consent_pb2.WithdrawConsentRequest(consent_id=record.id), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND and "unknown_consent" in details
    code, details = await code_of(mesh.stubs["osaka"].WithdrawConsent(
        consent_pb2.WithdrawConsentRequest(resident="R0004"), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND and "no_active_consent" in details
    listed = await mesh.stubs["kakogawa"].ListConsents(
        consent_pb2.ListConsentsRequest(resident="R0004", active_only=True), timeout=10)
    assert [c.id for c in listed.consents] == [record.id]   # still active


async def test_bad_assertions_record_nothing(mesh):
    h = mesh.harness
    osaka_signed = mesh.assertion("R0005", by="osaka")  # 大阪府's platform, not 姫路市's
    link = mesh.assertion("R0005", purpose="link")
    expired = issue_assertion(mesh.keys["himeji"], local_id="R0005", ial=2, aal=2, purpose="consent",
                              now=utcnow() - timedelta(minutes=20)).dumps().encode()
    good = issue_assertion(mesh.keys["himeji"], local_id="R0005", ial=2, aal=2, purpose="consent")
    doc = good.assertion.to_json()
    doc["local_id"] = "R0006"                      # edited after signing
    edited = json.dumps({**good.to_json(), "assertion": doc}).encode()
    out_of_range = sign_assertion(IdentityAssertion(**{**good.assertion.to_json(), "aal": 4,
                                                      "jti": "x" * 24}),
                                  mesh.keys["himeji"]).dumps().encode()
    cases = [
        (b"", grpc.StatusCode.INVALID_ARGUMENT, "assertion_required"),
        (b"{not json", grpc.StatusCode.INVALID_ARGUMENT, "malformed_assertion"),
        (osaka_signed, grpc.StatusCode.PERMISSION_DENIED, "assertion_other_platform"),
        (link, grpc.StatusCode.INVALID_ARGUMENT, "assertion_wrong_purpose"),
        (expired, grpc.StatusCode.PERMISSION_DENIED, "assertion_expired"),
        (edited, grpc.StatusCode.PERMISSION_DENIED, "assertion_signature_invalid"),
        (out_of_range, grpc.StatusCode.INVALID_ARGUMENT, "level_out_of_range"),
    ]
    for raw, want, code in cases:
        got, details = await code_of(mesh.grant("kakogawa", "R0005", assertion=raw))
        assert (got, code) == (want, details.split(":")[0]), details
    # a resident who is not in the personal data
    got, details = await code_of(mesh.grant("kakogawa", "R9999"))
    assert got == grpc.StatusCode.NOT_FOUND and "unknown_resident" in details
    # bad terms
    got, details = await code_of(mesh.grant("kakogawa", "R0005", purpose=""))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "invalid_consent" in details
    # replay: the same sign-in cannot be spent twice, even for other terms
    once = mesh.assertion("R0005")
    await mesh.grant("kakogawa", "R0005", assertion=once)
    got, details = await code_of(mesh.grant("kakogawa", "R0005", assertion=once, purpose="防災"))
    assert got == grpc.StatusCode.ALREADY_EXISTS and "assertion_replayed" in details, details
    rc, out, err = await h.cli("connector", "consent", "list", "--data-dir", str(h.root / "himeji"),
                               "--resident", "R0005", "--json")
    assert rc == 0, err
    assert [c["purpose"] for c in json.loads(out)] == ["研究"]  # one, from the good call
    rc, out, err = await h.cli("connector", "consent", "list", "--data-dir", str(h.root / "himeji"),
                               "--resident", "R0006", "--json")
    assert rc == 0 and json.loads(out) == []


async def test_the_cli_issues_an_assertion_and_relays_consent(mesh):
    """姫路市's IdP issues a consent assertion (0600 file); 加古川市's operator relays it with the
    CLI, naming 姫路市 by participant id; lists and withdraws it the same way."""
    h = mesh.harness
    himeji, kakogawa = str(h.root / "himeji"), str(h.root / "kakogawa")
    token = h.root / "r0007.assertion.json"
    rc, out, err = await h.cli("connector", "identity", "assert", "--data-dir", himeji, "--local-id",
                               "R0007", "--ial", "2", "--aal", "2", "--purpose", "consent",
                               "--out", str(token))
    assert rc == 0, err
    assert token.stat().st_mode & 0o777 == 0o600
    assert json.loads(token.read_text())["assertion"]["purpose"] == "consent"
    rc, out, err = await h.cli("connector", "consent", "relay", "grant", "--data-dir", kakogawa,
                               "--provider", HIMEJI, "--assertion", str(token), "--purpose", "研究",
                               "--dataset", DATASET, "--item", "受診日", "--expires", "30d", "--json")
    assert rc == 0, err
    record = json.loads(out)
    assert (record["resident"], record["participant"], record["items"]) == ("R0007", KAKOGAWA, ["受診日"])
    rc, out, err = await h.cli("connector", "consent", "relay", "list", "--data-dir", kakogawa,
                               "--provider", HIMEJI, "--resident", "R0007", "--json")
    assert rc == 0 and [c["id"] for c in json.loads(out)] == [record["id"]], err
    # the same file again is a replay
    rc, _, err = await h.cli("connector", "consent", "relay", "grant", "--data-dir", kakogawa,
                             "--provider", HIMEJI, "--assertion", str(token), "--purpose", "研究")
    assert rc != 0 and "assertion_replayed" in err
    rc, out, err = await h.cli("connector", "consent", "relay", "withdraw", "--data-dir", kakogawa,
                               "--provider", HIMEJI, "--id", record["id"], "--reason", "本人の申出")
    assert rc == 0 and record["id"] in out, err
    rc, out, err = await h.cli("connector", "consent", "relay", "list", "--data-dir", kakogawa,
                               "--provider", HIMEJI, "--resident", "R0007", "--active", "--json")
    assert rc == 0 and json.loads(out) == [], err
    # bad requests: a level out of range, a lifetime over ten minutes, a connector not in the mesh
    rc, _, err = await h.cli("connector", "identity", "assert", "--data-dir", himeji, "--local-id",
                             "R0007", "--ial", "4", "--aal", "2")
    assert rc != 0 and "level_out_of_range" in err
    rc, _, err = await h.cli("connector", "identity", "assert", "--data-dir", himeji, "--local-id",
                             "R0007", "--ial", "2", "--aal", "2", "--lifetime", "1h")
    assert rc != 0 and "invalid_assertion_request" in err
    rc, _, err = await h.cli("connector", "consent", "relay", "list", "--data-dir", kakogawa,
                             "--provider", "282294")
    assert rc != 0 and "provider_unknown" in err

"""Complete metering over real processes (issue 14, part 1): the provider's and the consumer's
signed reports of a real fetch agree; a consumer report with other counts and a report missing on
one side are flagged; a tampered report, one sent by another node and an unsigned one are refused
with their codes; consent counts arrive without resident ids; API calls are counted per key id,
anonymous ones apart."""

from __future__ import annotations

import json

import aiohttp
import grpc
import pytest

from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import registry_pb2
from mesh.usage_reports import SignedUsageReport

from .browser.conftest import add_operator
from .conftest import MeshHarness, bearer, http_json, wait_for
from .registry_sql import registry_sql
from .test_console_pages import UNTRANSLATED, Browser
from .transfer_fixtures import DATASET_ID, agree, fetch_cli, setup_transfer_mesh

PERIOD_URL = "/api/v1/metering/crosscheck?grace_minutes=0"


async def report(h: MeshHarness, sender: str, signed: bytes) -> registry_pb2.ReportUsageResponse:
    return await h.registry_stub(h.node_credentials(sender)).ReportUsage(
        registry_pb2.ReportUsageRequest(signed_report_json=signed), timeout=10)


async def refused(h: MeshHarness, sender: str, signed: bytes) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await report(h, sender, signed)
    return exc.value.code(), exc.value.details() or ""


def sign(h: MeshHarness, node: str, seq: int, role: str, records: list[dict],
         counts: list[dict] | None = None) -> SignedUsageReport:
    return SignedUsageReport.sign(NodeKeyStore(h.root / node / "tls"), seq=seq, role=role,
                                  records=records, consent_counts=counts)


def registry_rows(h: MeshHarness, sql: str) -> list:
    return registry_sql(h.registry_dir, sql)


@pytest.mark.integration
async def test_both_sides_report_and_the_registry_cross_checks(harness: MeshHarness):
    h = harness
    await setup_transfer_mesh(h, rows=1200)
    agreement = await agree(h)
    rc, result, err = await fetch_cli(h, agreement, h.root / "got" / "p.ndjson")
    assert rc == 0, err
    tid = result["transfer_id"]
    # the consumer's connector reports what it received (its metering.db rows, role consumer)
    await h.start_connector("kakogawa", "--heartbeat-interval", "500ms")
    auditor = await h.operator_headers("auditor")

    async def both_sides():
        body = await http_json(h.http_url + PERIOD_URL, auditor)
        rows = {r["transfer_id"]: r for r in body["transfers"]}
        return rows.get(tid, {}).get("status") == "agree" and body

    body = await wait_for(both_sides, timeout=20, what="both reports of the transfer")
    row = next(r for r in body["transfers"] if r["transfer_id"] == tid)
    assert row["provider"]["records"] == row["consumer"]["records"] == 1200
    assert (row["provider_org"], row["consumer_org"]) == ("270008", "282103")
    assert body["flagged"] == 0
    figures = await http_json(h.http_url + "/api/v1/metering/organisations", auditor)
    by_id = {o["id"]: o for o in figures["organisations"]}
    assert by_id["270008"]["records_provided"] == 1200
    assert by_id["282103"]["records_received"] == 1200
    held = registry_rows(h, "SELECT node, role, signed_json FROM usage_reports")
    assert {(r["node"], r["role"]) for r in held} >= {
        ("urn:areamesh:org:270008:node:main", "provider"),
        ("urn:areamesh:org:282103:node:main", "consumer")}
    doc = json.loads(next(r["signed_json"] for r in held if r["role"] == "consumer"))
    assert doc["signature"] and doc["report"]["records"][0]["transfer_id"] == tid

    # a consumer report with other counts than the provider's: flagged with both figures
    got = dict(doc["report"]["records"][0], records=1300)
    reply = await report(h, "kakogawa", sign(h, "kakogawa", 9001, "consumer", [got]).to_bytes())
    assert reply.accepted == 1 and reply.report_digest.startswith("sha256:")
    # a transfer the provider reports and the consumer never does: missing after the grace
    extra = dict(got, transfer_id="t-never-received", records=10)
    assert (await report(h, "osaka", sign(h, "osaka", 9001, "provider", [extra]).to_bytes())
            ).accepted == 1
    body = await http_json(h.http_url + PERIOD_URL, auditor)
    status = {r["transfer_id"]: r for r in body["transfers"]}
    assert status[tid]["status"] == "differ"
    assert (status[tid]["provider"]["records"], status[tid]["consumer"]["records"]) == (1200, 1300)
    assert status["t-never-received"]["status"] == "missing_consumer"
    assert status["t-never-received"]["consumer"] is None and body["flagged"] == 2
    # within the grace period the missing side is only pending
    body = await http_json(h.http_url + PERIOD_URL.replace("=0", "=60"), auditor)
    assert {r["transfer_id"]: r["status"] for r in body["transfers"]}["t-never-received"] == "pending"
    # the console page lists them too
    page = await _console_page(h, "/admin/metering?grace_minutes=0")
    assert "t-never-received" in page and "1,300" in page and "利用側の報告なし" in page
    # and the CLI: the same rows, exit code 1 while any is flagged (a scheduled check alerts)
    d = str(h.registry_dir)
    rc, out, err = await h.cli("registry", "metering", "crosscheck", "--data-dir", d,
                               "--grace-minutes", "0", "--flagged")
    assert rc == 1, err
    lines = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()[2:]}
    assert set(lines) == {tid, "t-never-received"}
    assert lines[tid][1] == "differ" and lines[tid][6:] == ["1200", "1300"]
    assert lines["t-never-received"][1:2] == ["missing_consumer"] and lines["t-never-received"][7] == "-"
    rc, out, err = await h.cli("registry", "metering", "figures", "--data-dir", d, "--json")
    assert rc == 0, err
    cli_figures = {o["id"]: o for o in json.loads(out)["organisations"]}
    # the figures count the providers' reports (the ones limits are enforced on), flagged or not
    assert cli_figures["270008"]["records_provided"] == 1210         # with the unreceived 10
    assert cli_figures["282103"]["records_received"] == 1210

    # tampered: the document changed after signing
    signed = sign(h, "kakogawa", 9002, "consumer", [dict(got, records=1400)]).to_json()
    signed["report"]["records"][0]["records"] = 5
    code, details = await refused(h, "kakogawa", json.dumps(signed).encode())
    assert code == grpc.StatusCode.PERMISSION_DENIED and "usage_report_signature_invalid" in details
    # signed by 大阪府's node but handed in by 加古川市's: the wrong node
    code, details = await refused(h, "kakogawa", sign(h, "osaka", 9003, "provider", [extra]).to_bytes())
    assert code == grpc.StatusCode.PERMISSION_DENIED and "usage_report_wrong_node" in details
    # unsigned records, as before this change
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await h.registry_stub(h.node_credentials("osaka")).ReportUsage(
            registry_pb2.ReportUsageRequest(records=[registry_pb2.UsageRecord(
                transfer_id="x", agreement_id=agreement, dataset_id=DATASET_ID, records=1)]),
            timeout=10)
    assert "usage_report_unsigned" in (exc.value.details() or "")
    # the consumer cannot report as provider of an agreement it consumes
    reply = await report(h, "kakogawa", sign(h, "kakogawa", 9004, "provider",
                                             [dict(got, transfer_id="t-fake")]).to_bytes())
    assert [r.code for r in reply.rejected] == ["not_the_provider"]
    assert registry_rows(h, "SELECT COUNT(*) FROM usage_records WHERE transfer_id = 't-fake'"
                         )[0][0] == 0


async def _console_page(h: MeshHarness, path: str) -> str:
    """The page as an auditor signed in to the console sees it."""
    await add_operator(h, "sato", "auditor")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        browser = Browser(h.http_url, s)
        await browser.sign_in("sato")
        status, page = await browser.get(path)
    assert status == 200, page[:300]
    assert not UNTRANSLATED.search(page) and "metering." not in page
    return page


@pytest.mark.integration
async def test_consent_counts_without_ids_and_api_calls_by_key(harness: MeshHarness):
    h = harness
    await setup_transfer_mesh(h, rows=10)
    counts = [{"dataset_id": DATASET_ID, "residents": 42, "consents": 57}]
    reply = await report(h, "osaka", sign(h, "osaka", 9100, "provider", [], counts).to_bytes())
    assert reply.consent_counts_accepted == 1
    # a count for a dataset another node serves is refused
    reply = await report(h, "kakogawa", sign(h, "kakogawa", 9100, "provider", [], counts).to_bytes())
    assert [r.code for r in reply.consent_counts_rejected] == ["not_your_dataset"]
    # an entry that carries anything but the counts (a resident id) is refused as a whole
    leaky = sign(h, "osaka", 9101, "provider", [], counts).to_json()
    leaky["report"]["consent_counts"][0]["residents_ids"] = ["R-0001"]
    code, details = await refused(h, "osaka", json.dumps(leaky).encode())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "malformed_usage_report" in details
    rows = registry_rows(h, "SELECT * FROM consent_counts")
    assert [(r["dataset_id"], r["publisher_id"], r["residents"], r["consents"]) for r in rows] \
        == [(DATASET_ID, "270008", 42, 57)]
    assert set(rows[0].keys()) == {"node", "dataset_id", "day", "publisher_id", "residents",
                                   "consents", "counted_at"}
    assert "R-0001" not in "".join(r["signed_json"] for r in registry_rows(
        h, "SELECT signed_json FROM usage_reports"))

    rc, key, err = await h.cli("registry", "participant", "key", "create", "--data-dir",
                               str(h.registry_dir), "--id", "282103")
    assert rc == 0, err
    key = key.strip()
    for _ in range(3):
        await http_json(h.http_url + "/api/v1/datasets")
    for _ in range(2):
        await http_json(h.http_url + "/api/v1/datasets", bearer(key))
    await http_json(h.http_url + "/api/3/action/package_list")
    auditor = await h.operator_headers("auditor")

    async def counted():
        body = await http_json(h.http_url + "/api/v1/metering/organisations", auditor)
        return body["api_calls"]["anonymous"] >= 4 and body

    body = await wait_for(counted, timeout=20, what="API calls flushed")
    assert {o["id"]: o["api_calls"] for o in body["organisations"]}["282103"] == 2
    stored = registry_rows(h, "SELECT day, api, key_id, calls FROM api_call_counts")
    key_id = key.split("_")[1]
    assert {(r["api"], r["key_id"]): r["calls"] for r in stored}[("public", key_id)] == 2
    assert {(r["api"], r["key_id"]): r["calls"] for r in stored}[("ckan", "")] == 1
    secret = key.split("_", 2)[2]                  # the secret itself may hold "_"
    assert len(secret) >= 40 and not any(secret in str(tuple(r)) for r in stored)
    # the consent count is credited to the dataset's publisher
    assert {o["id"]: o["consented_records"] for o in body["organisations"]}["270008"] == 42
    # a participant's key sees only its own organisation
    own = await http_json(h.http_url + "/api/v1/metering/organisations", bearer(key))
    assert [o["id"] for o in own["organisations"]] == ["282103"] and "api_calls" not in own

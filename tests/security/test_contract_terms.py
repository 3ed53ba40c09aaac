"""Contracts mean what they say: an offer that could never be met is refused when it is published,
and the duties signed into an agreement (delete within, report usage) are tracked on both sides,
confirmed only by the agreement's consumer, shown overdue to the provider and to the registry's
operator, and kept across restarts."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import grpc
import pytest
import yaml

from mesh.clock import timestamp
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc, registry_pb2, registry_pb2_grpc

from ..catalog_fixtures import publish_code, setup_catalog_mesh
from ..conftest import MeshHarness, http_json, node_target, wait_for
from ..transfer_fixtures import DATASET_ID, agree, dataset_doc, fetch_cli, write_rows

pytestmark = pytest.mark.integration

PURPOSE = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "研究"}
DUTY_OFFERS = [
    {"id": "delete-soon", "policy": {"permissions": [{"action": "use", "constraints": [PURPOSE]}],
                                     "duties": [
        {"action": "delete", "constraints": [
            {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": "PT2S"}]},
        {"action": "reportUsage", "constraints": [
            {"leftOperand": "elapsedTime", "operator": "eq", "rightOperand": "P30D"}]}]}},
]
ASSURED_ORGS = {"id": "assured-orgs", "policy": {"permissions": [{"action": "use", "constraints": [
    PURPOSE, {"leftOperand": "identityAssurance", "operator": "gteq", "rightOperand": 2}]}]}}


async def _mesh(h: MeshHarness, offers: list[dict[str, Any]]):
    """Registry, 大阪府 serving DATASET_ID with ``offers``, 加古川市 and 姫路市 enrolled."""
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    folder = h.root / "feed"
    folder.mkdir()
    source = folder / "population.csv"
    write_rows(source, 1, 300)
    doc = dataset_doc(source)
    doc["offers"] = offers
    desc = folder / "dataset.yaml"
    desc.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    rc, out, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                               "--file", str(desc))
    return rc, out + err, desc


async def _duties(h: MeshHarness, node: str, *extra: str) -> list[dict[str, Any]]:
    rc, out, err = await h.cli("connector", "contract", "duties", "--data-dir", str(h.root / node),
                               "--json", *extra)
    assert rc == 0, err
    return json.loads(out)


async def _registry_duties(h: MeshHarness, *extra: str) -> list[dict[str, Any]]:
    rc, out, err = await h.cli("registry", "duties", "list", "--data-dir", str(h.registry_dir),
                               "--json", *extra)
    assert rc == 0, err
    return json.loads(out)


def _by_action(rows: list[dict[str, Any]], agreement: str) -> dict[str, dict[str, Any]]:
    return {r["action"]: r for r in rows if r["agreement_id"] == agreement}


async def _confirm(h: MeshHarness, agreement: str, duty: str, node: str = "kakogawa"):
    return await h.cli("connector", "contract", "duty", "confirm", "--data-dir", str(h.root / node),
                       "--agreement", agreement, "--duty", duty, "--note", "削除しました")


async def _agreement_with_data(h: MeshHarness) -> tuple[Any, str]:
    rc, out, _ = await _mesh(h, DUTY_OFFERS)
    assert rc == 0, out
    provider = await h.start_connector("osaka", "--heartbeat-interval", "500ms")
    agreement = await agree(h, "delete-soon")
    return provider, agreement


# ---- identityAssurance without consent ----------------------------------------------------------


async def test_identity_assurance_offer_without_consent_is_refused_at_publish(harness: MeshHarness):
    """An organisation has no 身元確認/当人認証 level, so `identityAssurance` without `consent` could
    never be met: every negotiation would fail. Publishing such an offer is refused, naming it."""
    h = harness
    rc, output, desc = await _mesh(h, [ASSURED_ORGS])
    assert rc == 2, output
    assert "assured-orgs" in output and "offers[0].policy.permissions[0].constraints[1]" in output
    assert "identityAssurance" in output and "consent" in output
    assert not (h.root / "osaka" / "publishers").exists()  # nothing published locally
    # the registry refuses it on its own too (a connector that skips its checks)
    doc = yaml.safe_load(desc.read_text(encoding="utf-8"))
    doc.pop("source")
    code, details = await publish_code(h, "osaka", doc)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "identityAssurance" in details
    # beside consent eq true it is the residents' level (per record) and stays valid
    with_consent = {"id": "assured-residents", "policy": {"permissions": [{"action": "use", "constraints": [
        PURPOSE, {"leftOperand": "identityAssurance", "operator": "gteq", "rightOperand": 2},
        {"leftOperand": "consent", "operator": "eq", "rightOperand": True}]}]}}
    from mesh.policy import parse_policy

    assert parse_policy(with_consent["policy"]).permissions[0].requires_consent


DUTIES = "/api/v1/duties"


async def _auditor(h: MeshHarness) -> dict[str, str]:
    """The registry operator's view (duties are operator-only: an auditor reads them)."""
    return await h.operator_headers("auditor")


# ---- duties -------------------------------------------------------------------------------------


async def test_deletion_duty_overdue_is_shown_to_provider_and_operator(harness: MeshHarness):
    h = harness
    _provider, agreement = await _agreement_with_data(h)
    before = _by_action(await _duties(h, "osaka"), agreement)
    assert before["delete"]["state"] == "pending" and before["delete"]["due_at"] is None  # no data yet
    assert before["delete"]["within"] == "PT2S" and before["delete"]["role"] == "provider"

    rc, result, err = await fetch_cli(h, agreement, h.root / "got" / "population.ndjson")
    assert rc == 0 and result["records"] == 300, err

    async def provider_overdue():
        rows = await _duties(h, "osaka", "--overdue")
        return [r for r in rows if r["agreement_id"] == agreement] or None

    [overdue] = await wait_for(provider_overdue, timeout=20, what="the delete duty to fall overdue")
    assert overdue["action"] == "delete" and overdue["counterparty"].startswith("urn:areamesh:")
    assert "282103" in overdue["counterparty"] and overdue["due_at"] > overdue["data_since"]
    async def consumer_overdue():     # its clock starts at its own record of the transfer
        delete = _by_action(await _duties(h, "kakogawa"), agreement)["delete"]
        return delete if delete["state"] == "overdue" else None

    consumer_side = await wait_for(consumer_overdue, timeout=20,
                                   what="the consumer's delete duty to fall overdue")
    assert consumer_side["role"] == "consumer"

    # the operator sees it at the registry: from the HTTP route and the CLI
    async def operator_overdue():
        body = await http_json(f"{h.http_url}{DUTIES}?state=overdue", await _auditor(h))
        assert body["_status"] == 200
        return body["duties"]

    [seen] = await wait_for(operator_overdue, timeout=20, what="the provider's duty report")
    assert (seen["agreement_id"], seen["action"]) == (agreement, "delete")
    assert (seen["provider"], seen["consumer"]) == ("270008", "282103")
    assert seen["dataset_id"] == DATASET_ID and seen["due_at"] == overdue["due_at"]
    assert list(_by_action(await _registry_duties(h, "--overdue"), agreement)) == ["delete"]
    held = _by_action((await http_json(f"{h.http_url}{DUTIES}", await _auditor(h)))["duties"], agreement)
    assert held["reportUsage"]["state"] == "pending"  # 30 days: not overdue
    assert held["reportUsage"]["due_at"] > held["delete"]["due_at"]
    bad = await http_json(f"{h.http_url}{DUTIES}?state=late", await _auditor(h))
    assert bad["_status"] == 400 and bad["error"]["code"] == "invalid_state"

    # the consumer deletes and says so: fulfilled on both sides and, soon, at the registry
    rc, out, err = await _confirm(h, agreement, "delete")
    assert rc == 0 and "delete" in out, err
    assert _by_action(await _duties(h, "osaka"), agreement)["delete"]["state"] == "fulfilled"
    assert _by_action(await _duties(h, "kakogawa"), agreement)["delete"]["state"] == "fulfilled"

    async def operator_clear():
        body = await http_json(f"{h.http_url}{DUTIES}", await _auditor(h))
        rows = _by_action(body["duties"], agreement)
        return rows.get("delete", {}).get("state") == "fulfilled" and rows

    rows = await wait_for(operator_clear, timeout=20, what="the confirmation to reach the registry")
    assert rows["reportUsage"]["state"] == "pending"
    assert not _by_action(await _registry_duties(h, "--overdue"), agreement)


async def test_only_the_consumer_can_confirm_a_duty(harness: MeshHarness):
    h = harness
    provider, agreement = await _agreement_with_data(h)
    rc, _result, err = await fetch_cli(h, agreement, h.root / "got" / "population.ndjson")
    assert rc == 0, err
    # 姫路市 is a certified member of the mesh, but not this agreement's consumer
    target, options = node_target(provider, "270008")
    request = peer_pb2.ConfirmDutyRequest(agreement_id=agreement, duty_index=0, action="delete",
                                          note="削除済み（偽り）")
    for node in ("himeji", "osaka"):  # another participant; the provider's own certificate
        async with grpc.aio.secure_channel(target, h.node_credentials(node), options=options) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await peer_pb2_grpc.PeerServiceStub(ch).ConfirmDuty(request, timeout=10)
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED, node
        assert "only the consumer" in (exc.value.details() or "")
    # the CLI of a node that is not the consumer has no such agreement to confirm
    rc, _out, err = await _confirm(h, agreement, "delete", node="himeji")
    assert rc != 0 and agreement in err
    rows = _by_action(await _duties(h, "osaka"), agreement)
    assert rows["delete"]["confirmed_at"] is None and rows["delete"]["state"] != "fulfilled"
    # a wrong action for the index is refused too, even from the consumer
    async with grpc.aio.secure_channel(target, h.node_credentials("kakogawa"), options=options) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await peer_pb2_grpc.PeerServiceStub(ch).ConfirmDuty(peer_pb2.ConfirmDutyRequest(
                agreement_id=agreement, duty_index=0, action="reportUsage"), timeout=10)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reply = await peer_pb2_grpc.PeerServiceStub(ch).ConfirmDuty(request, timeout=10)
    assert reply.state == "fulfilled" and reply.confirmed_at.seconds > 0


async def test_only_the_provider_can_report_duty_states_to_the_registry(harness: MeshHarness):
    h = harness
    _provider, agreement = await _agreement_with_data(h)
    rc, _result, err = await fetch_cli(h, agreement, h.root / "got" / "population.ndjson")
    assert rc == 0, err

    async def reported():  # the report made after the transfer: its clock has started
        row = _by_action(await _registry_duties(h), agreement).get("reportUsage")
        return row if row and row["due_at"] else None

    held = await wait_for(reported, timeout=20, what="the provider's duty report")
    assert held["state"] == "pending"
    # the consumer (and a bystander) try to clear the duty at the registry themselves
    forged = registry_pb2.DutyReport(agreement_id=agreement, duty_index=1, action="reportUsage",
                                     state="fulfilled", confirmed_at=timestamp())
    unknown = registry_pb2.DutyReport(agreement_id="no-such-agreement", duty_index=0,
                                      action="delete", state="fulfilled")
    for node in ("kakogawa", "himeji"):
        async with h.registry_channel(h.node_credentials(node)) as ch:
            reply = await registry_pb2_grpc.RegistryServiceStub(ch).ReportDuties(
                registry_pb2.ReportDutiesRequest(duties=[forged, unknown]), timeout=10)
        assert reply.accepted == 0, node
        assert [r.code for r in reply.rejected] == ["not_the_provider", "unknown_agreement"], node
    after = _by_action(await _registry_duties(h), agreement)["reportUsage"]
    assert after["state"] == "pending" and after["confirmed_at"] is None
    assert after["reported_at"] == held["reported_at"]


async def test_duty_state_survives_restart(harness: MeshHarness):
    h = harness
    provider, agreement = await _agreement_with_data(h)
    rc, _result, err = await fetch_cli(h, agreement, h.root / "got" / "population.ndjson")
    assert rc == 0, err
    rc, _out, err = await _confirm(h, agreement, "delete")
    assert rc == 0, err
    confirmed = _by_action(await _duties(h, "osaka"), agreement)["delete"]["confirmed_at"]
    assert confirmed

    await provider.stop()
    provider = await h.start_connector("osaka", "--heartbeat-interval", "500ms")
    after = _by_action(await _duties(h, "osaka"), agreement)
    assert after["delete"]["state"] == "fulfilled" and after["delete"]["confirmed_at"] == confirmed
    assert after["reportUsage"]["state"] == "pending" and after["reportUsage"]["due_at"]
    # the restarted provider still hears the consumer, and still reports to the registry
    rc, _out, err = await _confirm(h, agreement, "reportUsage")
    assert rc == 0, err

    async def both_fulfilled_at_registry():
        rows = _by_action(await _registry_duties(h), agreement)
        return all(rows.get(a, {}).get("state") == "fulfilled" for a in ("delete", "reportUsage"))

    await wait_for(both_fulfilled_at_registry, timeout=20, what="both duties at the registry")
    await provider.stop()
    await h.registry.stop()
    await h.start_registry()
    body = await http_json(f"{h.http_url}{DUTIES}?state=fulfilled", await _auditor(h))
    assert {(d["agreement_id"], d["action"]) for d in body["duties"]} == {
        (agreement, "delete"), (agreement, "reportUsage")}
    for db, version in ((h.root / "osaka" / "contracts.db", 2), (h.registry_dir / "registry.db", 7)):
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] >= version

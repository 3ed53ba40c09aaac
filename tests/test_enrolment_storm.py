"""The whole country on one registry: with all 1,788 local governments imported, many nodes
enrol at once and every one gets its own certificate; one token raced by many enrolments is used
exactly once; the enrolled nodes heartbeat and are online."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from connector.enrol import join
from mesh.certs import uri_sans
from mesh.errors import AreameshError
from mesh.keystore import NodeKeyStore
from registry.store import RegistryStore, open_registry_db

from .conftest import MeshHarness

pytestmark = pytest.mark.integration

HYOGO = ["282014", "282022", "282031", "282049", "282065", "282073", "282103", "282138"]


@pytest.fixture
async def country(harness: MeshHarness) -> MeshHarness:
    rc, _, err = await harness.cli("registry", "participant", "import", "--data-dir",
                                     str(harness.registry_dir))
    assert rc == 0, err                # beside the harness's three participants, which stay
    for pid in HYOGO:
        rc, _, err = await harness.cli("registry", "participant", "certify", "--data-dir",
                                       str(harness.registry_dir), "--id", pid)
        assert rc == 0, err
    await harness.start_registry("--heartbeat-interval", "1s")
    return harness


async def _join(h: MeshHarness, name: str, token: str) -> None:
    await join(h.root / name, h.grpc_address, token, "main", enrol=h.enrol_address, timeout=60)


def _registry_state(h: MeshHarness) -> str:
    """Whether the registry still runs, and its log's tail: why enrolments went unanswered."""
    state = "running" if h.registry.running else f"exited with {h.registry.proc.returncode}"
    return f"registry {state}; log:\n{h.registry.log_tail(60)}"


async def test_many_nodes_enrol_at_once_each_with_its_own_certificate(country: MeshHarness):
    tokens = [await country.token(pid) for pid in HYOGO]
    await asyncio.gather(*(_join(country, f"n{i}", t) for i, t in enumerate(tokens)))
    serials = set()
    for i, pid in enumerate(HYOGO):
        cert = NodeKeyStore(country.root / f"n{i}" / "tls").certificate()
        serials.add(cert.serial_number)
        assert uri_sans(cert) == [f"urn:areamesh:org:{pid}:node:main"]
    assert len(serials) == len(HYOGO)
    async with open_registry_db(country.registry_dir) as db:
        nodes = {(n.participant_id, n.name) for n in await RegistryStore(db).nodes()}
        participants = await RegistryStore(db).participants()
    assert nodes == {(pid, "main") for pid in HYOGO}
    assert len(participants) >= 1788


async def test_one_token_raced_by_many_enrolments_is_used_once(country: MeshHarness):
    token = await country.token("282014")
    outcomes = await asyncio.gather(*(_join(country, f"race{i}", token) for i in range(8)),
                                    return_exceptions=True)
    won = [i for i, o in enumerate(outcomes) if o is None]
    lost = [o for o in outcomes if o is not None]
    assert len(won) == 1, (outcomes, _registry_state(country))
    assert all(isinstance(o, AreameshError) for o in lost), lost
    assert all("already used" in str(o) for o in lost), [str(o) for o in lost]
    for i in range(8):
        assert (country.root / f"race{i}" / "tls" / "node.crt").exists() == (i in won)


async def test_enrolled_nodes_heartbeat_and_are_online(country: MeshHarness):
    pids = HYOGO[:2]
    for i, pid in enumerate(pids):
        await _join(country, f"hb{i}", await country.token(pid))
    for i in range(len(pids)):
        await country.start_connector(f"hb{i}", "--heartbeat-interval", "1s")

    async def online() -> set[str]:
        async with open_registry_db(country.registry_dir) as db:
            return {n.participant_id for n in await RegistryStore(db).nodes()
                    if n.online(timedelta(seconds=1))}
    for _ in range(100):
        if await online() == set(pids):
            break
        await asyncio.sleep(0.2)
    assert await online() == set(pids)

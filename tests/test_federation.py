"""Two real meshes on loopback (two registries, three connectors) federating: nothing is trusted
until both operators added each other; then connectors accept the other mesh's nodes and know
them as (mesh, participant); a node claiming a mesh it does not belong to is refused; the other
mesh's revocations are enforced; removing the federation stops traffic within one refresh."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from cryptography import x509

from mesh.certs import to_pem
from mesh.keystore import NodeKeyStore, build_csr, generate_key, key_to_pem
from mesh.proto.areamesh.v1 import registry_pb2
from registry.ca.authority import CertificateAuthority

from .conftest import wait_for
from .federation_fixtures import REFRESH, NamedMesh, cross_credentials, ping, stop

pytestmark = pytest.mark.integration


@pytest.fixture
async def two_meshes(tmp_path):
    hyogo = NamedMesh(tmp_path / "hyogo", "hyogo", "兵庫県")
    osaka = NamedMesh(tmp_path / "osaka", "osaka", "大阪府")
    try:
        for m in (hyogo, osaka):
            await m.init_registry()
            await m.start_registry()
        await hyogo.enrol("himeji", "282014")
        await osaka.enrol("osaka", "270008")
        await osaka.enrol("kakogawa", "282103")
        flags = ("--crl-refresh", f"{REFRESH}s", "--heartbeat-interval", "1s")
        procs = {"himeji": await hyogo.start_connector("himeji", *flags),
                 "osaka": await osaka.start_connector("osaka", *flags),
                 "kakogawa": await osaka.start_connector("kakogawa", *flags)}
        yield hyogo, osaka, procs
    finally:
        await stop(osaka, hyogo)


async def _federate(hyogo: NamedMesh, osaka: NamedMesh) -> None:
    for mesh, other in ((hyogo, osaka), (osaka, hyogo)):
        rc, _o, err = await mesh.add(await other.export())
        assert rc == 0, err


def _forged(ca: CertificateAuthority, participant: str, trust: bytes) -> grpc.ChannelCredentials:
    key = generate_key()
    cert = ca.issue_node_certificate(x509.load_pem_x509_csr(build_csr(key, node_name="main")),
                                     participant_id=participant, node_name="main",
                                     lifetime=timedelta(hours=1))
    return grpc.ssl_channel_credentials(root_certificates=trust, private_key=key_to_pem(key),
                                        certificate_chain=to_pem(cert))


async def test_nothing_crosses_until_both_sides_added(two_meshes):
    hyogo, osaka, procs = two_meshes
    caller = cross_credentials(osaka, "osaka", hyogo)
    code, detail = await ping(procs["himeji"], hyogo, "282014", caller)
    assert code != grpc.StatusCode.OK          # not federated: TLS itself refuses

    rc, _o, err = await hyogo.add(await osaka.export())
    assert rc == 0, err

    async def tried_osaka():   # osaka's registry does not accept hyogo's: a failed handshake
        return (await hyogo.federations())["osaka"]["last_error"]

    await wait_for(tried_osaka, timeout=10, what="hyogo's registry to try osaka's")
    assert (await hyogo.federations())["osaka"]["status"] == "pending"
    assert hyogo.federated_at("himeji") == []
    code, detail = await ping(procs["himeji"], hyogo, "282014", caller)
    assert code != grpc.StatusCode.OK, detail  # one side only: still nothing crosses


async def test_federated_meshes_know_each_others_nodes(two_meshes):
    hyogo, osaka, procs = two_meshes
    await _federate(hyogo, osaka)

    async def active_both():
        return ((await hyogo.federations())["osaka"]["status"] == "active"
                and (await osaka.federations())["hyogo"]["status"] == "active")

    await wait_for(active_both, timeout=15, what="both federations to become active")

    async def connectors_know():
        return (hyogo.federated_at("himeji") == ["osaka"]
                and osaka.federated_at("osaka") == ["hyogo"])

    await wait_for(connectors_know, timeout=10, what="connectors to receive federated roots")

    # osaka's 大阪府 node calls hyogo's 姫路市 node: known as (osaka, 270008)
    code, caller = await ping(procs["himeji"], hyogo, "282014",
                              cross_credentials(osaka, "osaka", hyogo))
    assert code == grpc.StatusCode.OK, caller
    assert caller == "urn:areamesh:mesh:osaka:org:270008:node:main"
    # and the other way round
    code, caller = await ping(procs["osaka"], osaka, "270008",
                              cross_credentials(hyogo, "himeji", osaka))
    assert code == grpc.StatusCode.OK, caller
    assert caller == "urn:areamesh:mesh:hyogo:org:282014:node:main"
    # a local caller keeps its plain URI
    code, caller = await ping(procs["osaka"], osaka, "270008", osaka.node_credentials("kakogawa"))
    assert (code, caller) == (grpc.StatusCode.OK, "urn:areamesh:org:282103:node:main")

    # osaka's CA certifies a node for 姫路市 (a hyogo participant): it is osaka's 282014,
    # never mistaken for hyogo's own 姫路市
    code, caller = await ping(procs["himeji"], hyogo, "282014",
                              _forged(osaka.ca(), "282014", hyogo.ca().ca_pem()))
    assert code == grpc.StatusCode.OK, caller
    assert caller == "urn:areamesh:mesh:osaka:org:282014:node:main"

    # osaka's CA issues a certificate that claims to be a node of mesh hyogo: refused
    claims_hyogo = CertificateAuthority(osaka.registry_dir / "ca", "hyogo")
    code, detail = await ping(procs["himeji"], hyogo, "282014",
                              _forged(claims_hyogo, "270008", hyogo.ca().ca_pem()))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "mesh_claim_mismatch" in detail

    # a node of the other mesh may not use this mesh's registry
    ks = NodeKeyStore(osaka.root / "osaka" / "tls")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await hyogo.registry_stub(ks.channel_credentials(hyogo.ca().ca_pem())).ListNodes(
            registry_pb2.ListNodesRequest(), timeout=5)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "foreign_mesh" in exc.value.details()


async def test_federated_revocation_and_removal(two_meshes):
    hyogo, osaka, procs = two_meshes
    await _federate(hyogo, osaka)

    async def crossing(proc, mesh, pid, creds):
        return (await ping(proc, mesh, pid, creds))[0] == grpc.StatusCode.OK

    kakogawa_to_himeji = cross_credentials(osaka, "kakogawa", hyogo)
    osaka_to_himeji = cross_credentials(osaka, "osaka", hyogo)
    await wait_for(lambda: crossing(procs["himeji"], hyogo, "282014", kakogawa_to_himeji),
                   timeout=20, what="federation to carry traffic")

    # osaka revokes 加古川市's node: hyogo's connector refuses it within the refreshes
    rc, _o, err = await osaka.cli("registry", "node", "revoke", "--data-dir",
                                  str(osaka.registry_dir), "--participant", "282103",
                                  "--name", "main")
    assert rc == 0, err

    async def revoked():
        code, detail = await ping(procs["himeji"], hyogo, "282014", kakogawa_to_himeji)
        return code == grpc.StatusCode.PERMISSION_DENIED and "certificate_revoked" in detail

    await wait_for(revoked, timeout=3 * REFRESH + 5, what="osaka's revocation to reach himeji")
    assert await crossing(procs["himeji"], hyogo, "282014", osaka_to_himeji)

    # hyogo's operator removes the federation: traffic stops within one refresh, both ways
    rc, _o, err = await hyogo.cli("registry", "federation", "remove", "--data-dir",
                                  str(hyogo.registry_dir), "osaka", "--yes")
    assert rc == 0, err

    async def stopped():
        return not await crossing(procs["himeji"], hyogo, "282014", osaka_to_himeji)

    await wait_for(stopped, timeout=REFRESH + 5, what="hyogo's connector to drop osaka")

    async def osaka_pending():
        return (await osaka.federations())["hyogo"]["status"] == "pending"

    await wait_for(osaka_pending, timeout=10, what="osaka's registry to notice the removal")
    hyogo_to_osaka = cross_credentials(hyogo, "himeji", osaka)
    await wait_for(lambda: _not(crossing(procs["osaka"], osaka, "270008", hyogo_to_osaka)),
                   timeout=REFRESH + 5, what="osaka's connector to drop hyogo")


async def _not(awaitable) -> bool:
    return not await awaitable

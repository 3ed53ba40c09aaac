"""``areamesh registry …``: initialise, administer and serve the registry."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from mesh.cli_support import LazyGroup, report_errors, serve_until_signal
from mesh.config import options
from mesh.datadir import check_data_dir
from mesh.errors import FailedPrecondition, InvalidRequest
from mesh.ids import MESH_ID, ParticipantType
from mesh.log import setup_logging
from registry.ca.authority import CertificateAuthority
from registry.cli_common import as_admin, cli_actor, data_dir_option, with_store
from registry.config import SERVE_SETTINGS, RegistryConfig
from registry.database import DATABASE_ENV, database_url, remember_database
from registry.operators.admin import AdminService
from registry.operators.cli import audit_log, operator, participant_key
from registry.store import RegistryStore, open_registry_db


@click.group(cls=LazyGroup, lazy_subcommands={"duties": "registry.duties_cli:duties",
                                             "billing": "registry.billing.cli:billing",
                                             "datamap": "registry.datamap.cli:datamap",
                                             "federation": "registry.federation.cli:federation",
                                             "kpi": "registry.kpi.cli:kpi",
                                             "metering": "registry.metering.cli:metering"})
def registry() -> None:
    """Operate the mesh registry (運営組織のレジストリ): CA, participants, enrolment."""


@registry.command()
@data_dir_option
@click.option("--name", required=True, help="Operating organisation's name, e.g. 兵庫県.")
@click.option("--mesh-id", default="default", show_default=True,
              help="This mesh's id (a DNS label); federation tells meshes apart by it.")
@click.option("--database", default=None, envvar=DATABASE_ENV, show_envvar=True,
              help="PostgreSQL URL to keep the registry in (recorded in the data dir's "
                   "database.url, 0600); default: SQLite files in the data dir.")
@report_errors
def init(data_dir: Path, name: str, mesh_id: str, database: str | None) -> None:
    """Create the mesh root CA (key mode 0600) and the registry database."""
    if not MESH_ID.match(mesh_id):
        raise InvalidRequest("--mesh-id must be lowercase letters, digits and '-'")
    if (data_dir / "registry.db").exists() or (data_dir / "ca" / "ca.key").exists():
        raise InvalidRequest(f"{data_dir} is already initialised",
                             message_ja="このデータディレクトリは初期化済みです")
    url = database_url(data_dir, database)

    async def run() -> None:
        async with open_registry_db(data_dir, url) as db:
            store = RegistryStore(db)
            if await store.meta("mesh_id") is not None:   # PostgreSQL: another data dir's
                raise InvalidRequest(
                    "that database already holds a registry; give each further replica a copy "
                    "of the first one's data dir (its ca/ and identity/ keys) instead",
                    message_ja="このデータベースには既にレジストリがあります")
            await store.set_meta("mesh_id", mesh_id)
            await store.set_meta("name", name)

    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if url is not None:      # the database first: a refused one leaves no CA behind
        from registry.identity.pseudonyms import PseudonymKey

        asyncio.run(run())
        remember_database(data_dir, url)
        PseudonymKey.open(data_dir / "identity")   # now, so every copy of the dir shares it
    ca = CertificateAuthority.create(data_dir / "ca", mesh_id=mesh_id, name=name)
    if url is None:
        asyncio.run(run())
    click.echo(f"レジストリを初期化しました / registry initialised: {data_dir}")
    click.echo(f"mesh id: {mesh_id}")
    click.echo(f"CA fingerprint: {ca.fingerprint}")


@registry.group()
def participant() -> None:
    """Manage participants (参加者): local governments and companies."""


participant.add_command(participant_key)
registry.add_command(operator)
registry.add_command(audit_log)


@participant.command("add")
@data_dir_option
@click.option("--id", "pid", required=True,
              help="全国地方公共団体コード (6 digits) or 法人番号 (13 digits), with check digit.")
@click.option("--name", required=True, help="Participant name, e.g. 姫路市.")
@click.option("--type", "kind", required=True,
              type=click.Choice([t.value for t in ParticipantType]), help="Participant type.")
@report_errors
def participant_add(data_dir: Path, pid: str, name: str, kind: str) -> None:
    """Register a participant after validating its id's length and check digit."""
    p = as_admin(data_dir, lambda a, who: a.add_participant(who, pid, name, kind))
    click.echo(f"参加者を登録しました / participant added: {p.id} {p.name} ({p.type})")


@participant.command("import")
@data_dir_option
@click.option("--file", "path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CSV with code,name[,prefecture,reading]; default: the shipped list of "
                   "全国地方公共団体コード (mesh/municipalities.csv).")
@click.option("--only-prefecture", default=None,
              help="Only this prefecture's bodies: 28, 兵庫県, hyogo …")
@click.option("--dry-run", is_flag=True, help="Count what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def participant_import(data_dir: Path, path: Path | None, only_prefecture: str | None,
                       dry_run: bool, as_json: bool) -> None:
    """Register every local public body of the list as a participant, in one transaction
    (designated cities' wards and the 北方領土 villages are not bodies and are left out)."""
    import json

    from mesh.places import prefecture_code
    from registry.participants_import import import_bodies, read_body_list

    prefecture = None
    if only_prefecture is not None:
        prefecture = prefecture_code(only_prefecture)
        if prefecture is None:
            raise InvalidRequest(f"--only-prefecture {only_prefecture!r} names no prefecture",
                                 message_ja=f"--only-prefecture {only_prefecture!r} は都道府県ではありません")

    async def run(admin: AdminService, who):
        if dry_run:
            listed = read_body_list(path, prefecture)
            return listed, await import_bodies(admin.store.db, listed, dry_run=True)
        details: dict = {"source": str(path or "shipped list"), "only_prefecture": prefecture}

        async def act():     # a refused list (a bad row) is audited with its error code too
            listed = read_body_list(path, prefecture)
            details["sha256"] = listed.sha256
            result = await import_bodies(admin.store.db, listed)
            details.update(result.counts())
            return listed, result

        return await admin.run(who, "participant.import", prefecture or "all", details, act)

    listed, result = as_admin(data_dir, run)
    if as_json:
        click.echo(json.dumps(result.to_json(listed), ensure_ascii=False))
    else:
        for line in result.summary():
            click.echo(line)


@participant.command("list")
@data_dir_option
@report_errors
def participant_list(data_dir: Path) -> None:
    """List participants: id, type, status, name and, where known, the name's reading."""
    for p in asyncio.run(with_store(data_dir, lambda s, ca: s.participants())):
        click.echo(f"{p.id}\t{p.type}\t{p.status}\t{p.name}" + (f"\t{p.reading}" if p.reading else ""))


@participant.command("certify")
@data_dir_option
@click.option("--id", "pid", required=True, help="Participant id.")
@report_errors
def participant_certify(data_dir: Path, pid: str) -> None:
    """Certify a participant against the criteria (5-1); only certified ones may publish."""
    p = as_admin(data_dir, lambda a, who: a.certify(who, pid))
    click.echo(f"参加者 {p.id} {p.name} を認定しました / certified")


@participant.command("host")
@data_dir_option
@click.option("--tenant", required=True, help="Participant without a node of its own.")
@click.option("--host", "host_id", required=True, help="Participant whose connector hosts it.")
@report_errors
def participant_host(data_dir: Path, tenant: str, host_id: str) -> None:
    """Record a shared-use (共同利用) delegation: the host's connector publishes for the tenant."""
    as_admin(data_dir, lambda a, who: a.add_hosting(who, tenant, host_id))
    click.echo(f"{host_id} が {tenant} を共同利用で受け入れます / {host_id} now hosts {tenant}")


@participant.command("unhost")
@data_dir_option
@click.option("--tenant", required=True, help="Hosted participant.")
@click.option("--host", "host_id", required=True, help="Participant that hosted it.")
@report_errors
def participant_unhost(data_dir: Path, tenant: str, host_id: str) -> None:
    """Remove a shared-use delegation; the host may no longer publish for the tenant."""
    as_admin(data_dir, lambda a, who: a.remove_hosting(who, tenant, host_id))
    click.echo(f"共同利用を解除しました / {host_id} no longer hosts {tenant}")


@participant.command("suspend")
@data_dir_option
@click.option("--id", "pid", required=True, help="Participant id.")
@click.option("--reason", default="suspended by operator", show_default=True,
              help="Recorded with each revoked certificate.")
@report_errors
def participant_suspend(data_dir: Path, pid: str, reason: str) -> None:
    """Suspend a participant: revoke all its node certificates and refuse new enrolment."""
    serials, number = as_admin(data_dir, lambda a, who: a.suspend(who, pid, reason))
    click.echo(f"参加者 {pid} を停止しました / suspended; {len(serials)} certificate(s) revoked; "
               f"revocation list {number} published")


@participant.command("reinstate")
@data_dir_option
@click.option("--id", "pid", required=True, help="Participant id.")
@report_errors
def participant_reinstate(data_dir: Path, pid: str) -> None:
    """Lift a suspension. Revoked certificates stay revoked: nodes join again with new tokens."""
    as_admin(data_dir, lambda a, who: a.reinstate(who, pid))
    click.echo(f"参加者 {pid} の停止を解除しました / reinstated")


@registry.group()
def criteria() -> None:
    """The certification criteria (認定基準) the operator publishes (5-1)."""


@criteria.command("set")
@data_dir_option
@click.option("--file", "path", required=True, type=click.Path(exists=True, path_type=Path),
              help="UTF-8 text or Markdown with the criteria.")
@report_errors
def criteria_set(data_dir: Path, path: Path) -> None:
    """Publish the certification criteria (served at /api/v1/participants)."""
    text = path.read_text(encoding="utf-8")
    as_admin(data_dir, lambda a, who: a.set_criteria(who, text))
    click.echo("認定基準を更新しました / criteria updated")


@registry.group()
def node() -> None:
    """Manage enrolled connector nodes."""


@node.command("list")
@data_dir_option
@report_errors
def node_list(data_dir: Path) -> None:
    """List active nodes with their endpoint and last heartbeat."""
    for n in asyncio.run(with_store(data_dir, lambda s, ca: s.nodes())):
        seen = n.last_seen.isoformat() if n.last_seen else "-"
        click.echo(f"{n.participant_id}\t{n.name}\t{n.endpoint or '-'}\t{seen}\t{n.participant_name}")


@node.command("revoke")
@data_dir_option
@click.option("--participant", required=True, help="Participant id of the node.")
@click.option("--name", required=True, help="Node name.")
@click.option("--reason", default="revoked by operator", show_default=True,
              help="Recorded with each revoked certificate.")
@report_errors
def node_revoke(data_dir: Path, participant: str, name: str, reason: str) -> None:
    """Revoke every certificate of one node and publish a new revocation list."""
    serials, number = as_admin(data_dir, lambda a, who: a.revoke_node(who, participant, name,
                                                                     reason))
    click.echo(f"ノード {participant}/{name} を失効しました / revoked {len(serials)} "
               f"certificate(s); revocation list {number} published")


@registry.group("identity-provider")
def identity_provider() -> None:
    """本人確認サービス（IdP）の登録 / identity providers whose nodes may sign identity assertions.

    登録された参加者のノードだけが、その基盤の住民IDについて名寄せ・解除のアサーションに
    署名できます。 Only a registered participant's nodes may sign link/unlink assertions about
    its platform's ids (DATA_DIR/identity/identity.db).
    """


@identity_provider.command("add")
@data_dir_option
@click.option("--participant", required=True,
              help="IdPとなる認定済み参加者のID / certified participant acting as the identity provider.")
@click.option("--platform", "platform_name", required=True,
              help="基盤（IDの発行元サービス）の名称 / platform name, e.g. はりまID.")
@click.option("--max-ial", required=True, type=click.IntRange(1, 3),
              help="表明できる身元確認レベルの上限 (1–3) / highest identity assurance level it may assert.")
@click.option("--max-aal", required=True, type=click.IntRange(1, 3),
              help="表明できる当人認証レベルの上限 (1–3) / highest authentication level it may assert.")
@report_errors
def identity_provider_add(data_dir: Path, participant: str, platform_name: str, max_ial: int,
                          max_aal: int) -> None:
    """認定済み参加者をIdPとして登録・更新する / register (or update) a certified participant as an IdP."""
    from registry.identity.service import IdentityService

    async def register(store: RegistryStore, ca: CertificateAuthority):
        p = await store.participant(participant)
        if p.status != "certified":
            raise FailedPrecondition(
                f"participant {p.id} ({p.name}) is {p.status}; certify it first "
                "('areamesh registry participant certify')",
                message_ja=(f"参加者 {p.id}（{p.name}）は認定されていません（{p.status}）。"
                            "先に認定してください"),
                code="participant_not_certified")
        service = await IdentityService.open(data_dir / "identity", [ca.certificate])
        try:
            return await service.register_provider(p.id, platform_name, max_ial, max_aal)
        finally:
            await service.close()

    async def run(store: RegistryStore, ca: CertificateAuthority):
        return await AdminService(store, ca).run(
            cli_actor(), "identity_provider.add", participant,
            {"platform": platform_name, "max_ial": max_ial, "max_aal": max_aal},
            lambda: register(store, ca))

    provider = asyncio.run(with_store(data_dir, run))
    click.echo(f"IdPを登録しました / identity provider registered: {provider.participant_id} "
               f"{provider.platform_name} (身元確認≤{provider.max_ial}, 当人認証≤{provider.max_aal})")


@identity_provider.command("list")
@data_dir_option
@report_errors
def identity_provider_list(data_dir: Path) -> None:
    """登録済みのIdPを一覧表示する / list identity providers and their maximum levels."""
    from registry.identity.store import IdentityStore, open_identity_db

    async def run(store: RegistryStore, ca: CertificateAuthority):
        if database_url(data_dir) is None and not (data_dir / "identity" / "identity.db").exists():
            return []  # nothing registered yet; listing creates nothing
        async with open_identity_db(data_dir / "identity") as db:
            return await IdentityStore(db).providers()

    for p in asyncio.run(with_store(data_dir, run)):
        click.echo(f"{p.participant_id}\tial<={p.max_ial}\taal<={p.max_aal}\t{p.registered_at}\t"
                   f"{p.platform_name}")


@registry.group()
def token() -> None:
    """Join tokens for enrolling connector nodes."""


@token.command("create")
@data_dir_option
@click.option("--participant", required=True, help="Participant the token enrols a node for.")
@click.option("--ttl", default="24h", show_default=True, help="Validity, e.g. 30m, 24h, 7d.")
@report_errors
def token_create(data_dir: Path, participant: str, ttl: str) -> None:
    """Print a one-time join token (it also pins this registry's CA)."""
    t = as_admin(data_dir, lambda a, who: a.create_token(who, participant, ttl))
    click.echo(str(t))


@token.command("list")
@data_dir_option
@click.option("--participant", default=None, help="Only this participant's tokens.")
@report_errors
def token_list(data_dir: Path, participant: str | None) -> None:
    """List join tokens, newest first: id, participant, state, expiry, the node that used it."""
    for t in asyncio.run(with_store(data_dir, lambda s, ca: s.tokens(participant))):
        click.echo(f"{t.id}\t{t.participant_id}\t{t.state}\t{t.expires_at}\t"
                   f"{t.used_by_node or '-'}")


@token.command("revoke")
@data_dir_option
@click.option("--id", "token_id", required=True, help="Token id (the part after 'am1.').")
@report_errors
def token_revoke(data_dir: Path, token_id: str) -> None:
    """Revoke an unused join token: enrolment with it is refused from now on."""
    as_admin(data_dir, lambda a, who: a.revoke_token(who, token_id))
    click.echo(f"参加トークン {token_id} を失効しました / join token revoked")


@registry.command()
@options(SERVE_SETTINGS)
@report_errors
def serve(**kw: str) -> None:
    """Serve gRPC (enrolment, renewal, heartbeat, discovery, revocation) and HTTP."""
    from registry.app import RegistryApp

    config = RegistryConfig.from_options(**kw)
    setup_logging(config.log_format)
    if config.database:    # what opens a store later (KPI figures, identity) finds it too
        os.environ[DATABASE_ENV] = config.database

    async def run() -> None:
        async with open_registry_db(config.data_dir, config.database) as db:
            await RegistryStore(db).set_meta("crl_validity", kw["crl_validity"])
        await serve_until_signal(RegistryApp(config))

    on_files = database_url(config.data_dir, config.database) is None
    check_data_dir(config.data_dir,
                   required=("registry.db",) * on_files + ("ca/ca.key", "ca/ca.crt"),
                   secrets=("ca/*.key", "identity/*.key"),
                   init_hint=f"run 'areamesh registry init --data-dir {config.data_dir} "
                             "--name ...' first")
    asyncio.run(run())

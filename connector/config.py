"""ConnectorConfig and the table of its settings (flags, environment, docs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from mesh.config import Setting, parse_hostport
from mesh.durations import parse_duration
from mesh.errors import InvalidRequest

SERVE_SETTINGS = [
    Setting("connector.data_dir", "--data-dir", None,
            "Connector data directory (tls/, node.json).", required=True),
    Setting("connector.grpc.listen", "--grpc", "127.0.0.1:7701",
            "PeerService gRPC listen address HOST:PORT (mTLS). Port 0 = any free port."),
    Setting("connector.http.listen", "--http", "127.0.0.1:7781",
            "Admin HTTP listen address HOST:PORT (health, status, peers, metrics)."),
    Setting("connector.advertise", "--advertise", None,
            "HOST:PORT other connectors dial; default: the bound gRPC address."),
    Setting("connector.registry", "--registry", None,
            "Registry gRPC HOST:PORT; default: the one this node joined."),
    Setting("connector.heartbeat.interval", "--heartbeat-interval", "30s",
            "How often the node reports to the registry and checks its certificate."),
    Setting("connector.crl.refresh", "--crl-refresh", "60s",
            "How often the revocation list is refreshed (revoked peers are refused within it)."),
    Setting("connector.crl.grace", "--crl-grace", "24h",
            "How long past its next-update a cached revocation list is still used while the "
            "registry is unreachable; after that, calls are refused."),
    Setting("connector.renew.at", "--renew-at", "0.33",
            "Renew the certificate when less than this fraction of its lifetime is left."),
    Setting("connector.watch.interval", "--watch-interval", "10s",
            "How often subscribed datasets are checked for changes (file modified, refresh)."),
    Setting("connector.ledger.checkpoint_interval", "--ledger-checkpoint-interval", "5m",
            "How often the flow ledger's head is signed (when entries were added) and the "
            "checkpoints the registry does not hold yet are sent to it for audit."),
    Setting("connector.log.format", "--log-format", "text", "Log format: text or json."),
    Setting("connector.portal.oidc.issuer", "--portal-oidc-issuer", None,
            "The resident portal's OpenID provider: the platform's issuer URL (discovery at "
            "ISSUER/.well-known/openid-configuration; https, or http on loopback). Unset: the "
            "portal's sign-in is off."),
    Setting("connector.portal.oidc.client_id", "--portal-oidc-client-id", None,
            "The portal's client id at the OpenID provider."),
    Setting("connector.portal.oidc.client_secret_file", "--portal-oidc-client-secret-file", None,
            "File (mode 0600) holding the portal's client secret at the OpenID provider."),
    Setting("connector.portal.oidc.resident_claim", "--portal-oidc-resident-claim", "sub",
            "The ID token claim that carries the platform's resident id (the personal datasets' "
            "subject id)."),
    Setting("connector.portal.base_url", "--portal-base-url", None,
            "The portal's public base URL as browsers reach it (e.g. https://portal.example.jp); "
            "the OpenID redirect URI is BASE/portal/callback. Default: http://<--http address>."),
]


@dataclass(frozen=True)
class ConnectorConfig:
    data_dir: Path
    grpc_listen: str = "127.0.0.1:7701"
    http_listen: str = "127.0.0.1:7781"
    advertise: str | None = None
    registry: str | None = None
    heartbeat_interval: timedelta = timedelta(seconds=30)
    crl_refresh: timedelta = timedelta(seconds=60)
    crl_grace: timedelta = timedelta(hours=24)
    renew_at: float = 0.33
    log_format: str = "text"
    watch_interval: timedelta = timedelta(seconds=10)
    ledger_checkpoint_interval: timedelta = timedelta(minutes=5)
    portal_oidc_issuer: str | None = None
    portal_oidc_client_id: str | None = None
    portal_oidc_client_secret_file: Path | None = None
    portal_oidc_resident_claim: str = "sub"
    portal_base_url: str | None = None

    def __post_init__(self) -> None:
        parse_hostport(self.grpc_listen, what="--grpc")
        parse_hostport(self.http_listen, what="--http")
        if self.advertise:
            parse_hostport(self.advertise, what="--advertise")
        if self.registry:
            parse_hostport(self.registry, what="--registry")
        if not 0.0 < self.renew_at < 1.0:
            raise InvalidRequest("--renew-at must be a fraction between 0 and 1")
        for name in ("heartbeat_interval", "crl_refresh", "watch_interval",
                     "ledger_checkpoint_interval"):
            if getattr(self, name) < timedelta(milliseconds=100):
                raise InvalidRequest(f"--{name.replace('_', '-')} must be at least 100ms")
        if self.log_format not in ("text", "json"):
            raise InvalidRequest("--log-format must be text or json")
        if self.portal_oidc_issuer and not (self.portal_oidc_client_id
                                            and self.portal_oidc_client_secret_file):
            raise InvalidRequest("--portal-oidc-issuer needs --portal-oidc-client-id and "
                                 "--portal-oidc-client-secret-file",
                                 message_ja="住民ポータルのOpenID設定には client id と "
                                            "client secret のファイルも必要です")
        if self.portal_oidc_issuer:
            from connector.web.portal.oidc import check_issuer_url

            check_issuer_url(self.portal_oidc_issuer)

    @classmethod
    def from_options(cls, **kw: str | None) -> ConnectorConfig:
        try:
            renew_at = float(kw["renew_at"] or "0.33")
        except ValueError:
            raise InvalidRequest("--renew-at must be a number such as 0.33") from None
        return cls(data_dir=Path(str(kw["data_dir"])), grpc_listen=str(kw["grpc"]),
                   http_listen=str(kw["http"]), advertise=kw["advertise"] or None,
                   registry=kw["registry"] or None,
                   heartbeat_interval=parse_duration(str(kw["heartbeat_interval"])),
                   crl_refresh=parse_duration(str(kw["crl_refresh"])),
                   crl_grace=parse_duration(str(kw["crl_grace"])), renew_at=renew_at,
                   log_format=str(kw["log_format"]),
                   watch_interval=parse_duration(str(kw["watch_interval"] or "10s")),
                   ledger_checkpoint_interval=parse_duration(
                       str(kw.get("ledger_checkpoint_interval") or "5m")),
                   portal_oidc_issuer=kw.get("portal_oidc_issuer") or None,
                   portal_oidc_client_id=kw.get("portal_oidc_client_id") or None,
                   portal_oidc_client_secret_file=Path(str(kw["portal_oidc_client_secret_file"]))
                   if kw.get("portal_oidc_client_secret_file") else None,
                   portal_oidc_resident_claim=str(kw.get("portal_oidc_resident_claim") or "sub"),
                   portal_base_url=(kw.get("portal_base_url") or "").rstrip("/") or None)

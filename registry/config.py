"""RegistryConfig and the table of its settings (flags, environment, docs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from mesh.config import Setting, default_enrol_address, parse_hostport
from mesh.durations import parse_duration
from mesh.errors import InvalidRequest

SERVE_SETTINGS = [
    Setting("registry.data_dir", "--data-dir", None,
            "Registry data directory (CA, registry.db).", required=True),
    Setting("registry.database", "--database", None,
            "PostgreSQL URL (postgresql://user@host/db) for every registry store, shared by any "
            "number of replicas; default: the data dir's database.url if `registry init "
            "--database` wrote one, else SQLite files in the data dir."),
    Setting("registry.grpc.listen", "--grpc", "127.0.0.1:7700",
            "gRPC listen address HOST:PORT (TLS; mTLS for enrolled nodes). Port 0 = any free port."),
    Setting("registry.enrol.listen", "--enrol", None,
            "Enrolment gRPC listen address HOST:PORT (server TLS + join token; only Enrol is "
            "served there). Default: the --grpc host and port − 1 (7699), or any free port if "
            "--grpc has port 0."),
    Setting("registry.http.listen", "--http", "127.0.0.1:7780",
            "HTTP listen address HOST:PORT (health, trust bundle, revocation list, metrics)."),
    Setting("registry.cert.lifetime", "--cert-lifetime", "30d",
            "Lifetime of node certificates issued at enrolment and renewal."),
    Setting("registry.crl.validity", "--crl-validity", "1h",
            "How long a signed revocation list stays current (its next-update time)."),
    Setting("registry.heartbeat.interval", "--heartbeat-interval", "30s",
            "Expected node heartbeat interval; a node is online if seen within three of them."),
    Setting("registry.federation.interval", "--federation-interval", "30s",
            "How often the registry exchanges with each federated mesh's registry (whether the "
            "federation is mutual, and that mesh's revocation list)."),
    Setting("registry.log.format", "--log-format", "text", "Log format: text or json."),
]


@dataclass(frozen=True)
class RegistryConfig:
    data_dir: Path
    grpc_listen: str = "127.0.0.1:7700"
    http_listen: str = "127.0.0.1:7780"
    enrol_listen: str = ""
    cert_lifetime: timedelta = timedelta(days=30)
    crl_validity: timedelta = timedelta(hours=1)
    heartbeat_interval: timedelta = timedelta(seconds=30)
    federation_interval: timedelta = timedelta(seconds=30)
    log_format: str = "text"
    database: str | None = None     # PostgreSQL URL; None: registry/database.py decides

    def __post_init__(self) -> None:
        parse_hostport(self.grpc_listen, what="--grpc")
        if not self.enrol_listen:
            object.__setattr__(self, "enrol_listen", default_enrol_address(self.grpc_listen))
        parse_hostport(self.enrol_listen, what="--enrol")
        parse_hostport(self.http_listen, what="--http")
        if not timedelta(seconds=1) <= self.cert_lifetime <= timedelta(days=397):
            raise InvalidRequest("--cert-lifetime must be between 1s and 397d")
        if self.crl_validity < timedelta(seconds=1):
            raise InvalidRequest("--crl-validity must be at least 1s")
        if self.federation_interval < timedelta(seconds=1):
            raise InvalidRequest("--federation-interval must be at least 1s")
        if self.log_format not in ("text", "json"):
            raise InvalidRequest("--log-format must be text or json")

    @classmethod
    def from_options(cls, **kw: str) -> RegistryConfig:
        return cls(data_dir=Path(kw["data_dir"]), grpc_listen=kw["grpc"], http_listen=kw["http"],
                   enrol_listen=kw["enrol"] or "",
                   cert_lifetime=parse_duration(kw["cert_lifetime"]),
                   crl_validity=parse_duration(kw["crl_validity"]),
                   heartbeat_interval=parse_duration(kw["heartbeat_interval"]),
                   federation_interval=parse_duration(kw["federation_interval"]),
                   log_format=kw["log_format"], database=kw.get("database") or None)

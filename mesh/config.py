"""Settings tables: one (key, default, help) table per service drives CLI flags, environment
variables and the settings reference in docs/settings.md.

Key ``connector.grpc.listen`` ↔ environment ``AREAMESH_CONNECTOR_GRPC_LISTEN`` ↔ the flag the
table names (``--grpc``). Each service turns the parsed values into a frozen dataclass that
validates itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from mesh.errors import InvalidRequest


@dataclass(frozen=True)
class Setting:
    key: str
    flag: str
    default: Any
    help: str
    required: bool = False

    @property
    def envvar(self) -> str:
        return "AREAMESH_" + self.key.upper().replace(".", "_")

    @property
    def param(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def options(table: Sequence[Setting]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a click command with one option per setting (environment variable included)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for s in reversed(table):
            fn = click.option(s.flag, s.param, envvar=s.envvar, default=s.default,
                              required=s.required, show_default=s.default is not None,
                              show_envvar=True, help=s.help)(fn)
        return fn

    return decorate


def parse_hostport(value: str, *, what: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) → (host, port); port 0 means any free port."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidRequest(f"{what} must be HOST:PORT, got {value!r}",
                             message_ja=f"{what} は HOST:PORT の形式で指定してください")
    return host, int(port)


def default_enrol_address(grpc_address: str) -> str:
    """The convention registry and connector share: the registry's enrolment listener is one
    port below its mTLS port (7700 → 7699). Port 0 stays 0 (any free port)."""
    host, port = parse_hostport(grpc_address, what="registry gRPC address")
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port - 1 if port else 0}"


def markdown_table(title: str, table: Sequence[Setting]) -> str:
    rows = [f"## {title}", "", "| key | flag | environment | default | meaning |",
            "|---|---|---|---|---|"]
    for s in table:
        default = "(required)" if s.required else f"`{s.default}`" if s.default is not None else ""
        rows.append(f"| `{s.key}` | `{s.flag}` | `{s.envvar}` | {default} | {s.help} |")
    return "\n".join(rows) + "\n"

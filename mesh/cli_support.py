"""What every areamesh CLI command shares: error reporting and the serve loop."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import click

from mesh.errors import AreameshError, InvalidRequest

log = logging.getLogger("areamesh.cli")


def report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ``AreameshError`` into a readable message (Japanese, then English) and exit 1/2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AreameshError as exc:
            if exc.message_ja:
                click.echo(f"エラー: {exc.message_ja}", err=True)
            field_errors = exc.details.get("errors") if exc.details else None
            if field_errors:
                click.echo(f"error [{exc.code}]: {len(field_errors)} field error(s):", err=True)
                for e in field_errors:
                    click.echo(f"  - {e['field']}: {e['message_ja']} / {e['message']}", err=True)
            else:
                click.echo(f"error [{exc.code}]: {exc.message}", err=True)
            sys.exit(2 if isinstance(exc, InvalidRequest) else 1)
        except ValueError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


class Service(Protocol):
    def ready_info(self) -> dict[str, Any]:
        """Bound ports and identity, printed as the ``ready`` line."""

    async def start(self) -> None: ...
    async def stop(self, grace: float = ...) -> None: ...


async def serve_until_signal(service: Service) -> None:
    """Start, print one JSON ``ready`` line on stdout, run until SIGINT/SIGTERM, then stop.

    A start that fails (a port that cannot be bound, a database newer than the code, ...) stops
    whatever had started, without grace, and raises: the process exits non-zero with the
    message instead of running half-started, and its supervisor restarts it. ``stop`` must
    therefore cope with a service that started only in part."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
    except BaseException as exc:
        log.error("start-up failed, stopping what had started: %s",
                  getattr(exc, "message", None) or exc)
        try:
            await service.stop(grace=0)
        except Exception as cleanup:  # a part that never started: nothing to stop there
            log.debug("clean-up after a failed start: %r", cleanup)
        raise
    try:
        click.echo(json.dumps({"event": "ready", **service.ready_info()}, ensure_ascii=False))
        sys.stdout.flush()
        await stop.wait()
        log.info("signal received; shutting down")
    finally:
        await service.stop()


class LazyGroup(click.Group):
    """A click group whose subcommand groups are imported only when used (click's documented
    lazy-loading pattern). Every ``areamesh`` call is a new process, and importing pyarrow,
    numpy and the matching code for a ``registry token create`` cost half a second each time."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.lazy_subcommands = lazy_subcommands or {}  # name → "module:attribute"

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_subcommands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_subcommands.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        import importlib

        return getattr(importlib.import_module(module_name), attribute)


password_file_option = click.option(
    "--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="File (mode 0600) whose first line is the password. Without it, you are prompted.")


def new_password(path: Path | None) -> str:
    """A console account's new password: from a 0600 file, or prompted twice; never an
    argument. Shared by the registry's and the connector's ``operator`` commands."""
    from mesh.passwords import check_policy, read_password_file

    if path is not None:
        password = read_password_file(path)
    else:
        password = click.prompt("パスワード / password", hide_input=True,
                                confirmation_prompt=True)
    check_policy(password)
    return password

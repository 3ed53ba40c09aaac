"""The CLI: help text everywhere, settings documented, init and participant validation."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from areamesh.cli import cli
from mesh.jointoken import JoinToken

ROOT = Path(__file__).resolve().parent.parent


def walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


def test_every_command_and_option_has_help():
    missing = []
    for path, command in walk(cli):
        if not (command.help or "").strip():
            missing.append(" ".join(path) or "areamesh")
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not param.help:
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert missing == []
    result = CliRunner().invoke(cli, ["registry", "serve", "--help"])
    assert result.exit_code == 0 and "AREAMESH_REGISTRY_GRPC_LISTEN" in result.output


def test_settings_doc_is_current():
    spec = importlib.util.spec_from_file_location(
        "gen", ROOT / "scripts" / "generate_settings_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "settings.md").read_text() == module.render(), \
        "run python scripts/generate_settings_doc.py"


@pytest.fixture
def initialised(tmp_path: Path) -> Path:
    d = tmp_path / "reg"
    result = CliRunner().invoke(cli, ["registry", "init", "--data-dir", str(d), "--name",
                                      "兵庫県", "--mesh-id", "hyogo"])
    assert result.exit_code == 0, result.output
    return d


def test_init_creates_ca_with_private_key_0600_and_database(initialised: Path):
    assert stat.S_IMODE((initialised / "ca" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((initialised / "ca" / "registry.key").stat().st_mode) == 0o600
    assert (initialised / "ca" / "ca.crt").exists()
    assert (initialised / "registry.db").exists()


def test_init_refuses_to_overwrite(initialised: Path):
    key_before = (initialised / "ca" / "ca.key").read_bytes()
    result = CliRunner().invoke(cli, ["registry", "init", "--data-dir", str(initialised),
                                      "--name", "x"])
    assert result.exit_code == 2 and "already initialised" in result.output
    assert (initialised / "ca" / "ca.key").read_bytes() == key_before


@pytest.mark.parametrize("pid,kind,needle", [
    ("282015", "municipality", "check-digit rule"),
    ("28201", "municipality", "length rule"),
    ("270008", "municipality", "prefecture's code"),
    ("282014", "prefecture", "municipality's code"),
    ("1234567890123", "private", "check-digit rule"),
    ("700001205000", "operator", "length rule"),
])
def test_participant_add_rejects_bad_ids_naming_the_rule(initialised: Path, pid, kind, needle):
    result = CliRunner().invoke(cli, ["registry", "participant", "add", "--data-dir",
                                      str(initialised), "--id", pid, "--name", "x",
                                      "--type", kind])
    assert result.exit_code == 2
    assert needle in result.output
    listing = CliRunner().invoke(cli, ["registry", "participant", "list", "--data-dir",
                                       str(initialised)])
    assert pid not in listing.output


def test_participant_add_and_duplicate(initialised: Path):
    runner = CliRunner()
    args = ["registry", "participant", "add", "--data-dir", str(initialised), "--id", "282014",
            "--name", "姫路市", "--type", "municipality"]
    assert runner.invoke(cli, args).exit_code == 0
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "already exists" in again.output
    ok = runner.invoke(cli, ["registry", "participant", "add", "--data-dir", str(initialised),
                             "--id", "7000012050002", "--name", "国税庁", "--type", "operator"])
    assert ok.exit_code == 0, ok.output


def test_token_create_pins_this_registry_ca(initialised: Path):
    from registry.ca.authority import CertificateAuthority

    runner = CliRunner()
    runner.invoke(cli, ["registry", "participant", "add", "--data-dir", str(initialised), "--id",
                        "282014", "--name", "姫路市", "--type", "municipality"])
    result = runner.invoke(cli, ["registry", "token", "create", "--data-dir", str(initialised),
                                 "--participant", "282014", "--ttl", "2h"])
    assert result.exit_code == 0, result.output
    token = JoinToken.parse(result.output.strip())
    assert token.ca_fingerprint == CertificateAuthority(initialised / "ca", "hyogo").fingerprint
    bad_ttl = runner.invoke(cli, ["registry", "token", "create", "--data-dir", str(initialised),
                                  "--participant", "282014", "--ttl", "90d"])
    assert bad_ttl.exit_code == 2 and "30d" in bad_ttl.output


def test_serve_rejects_bad_listen_address(initialised: Path):
    result = CliRunner().invoke(cli, ["registry", "serve", "--data-dir", str(initialised),
                                      "--grpc", "nonsense"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output

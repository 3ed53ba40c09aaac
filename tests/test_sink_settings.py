"""Named sinks without a mesh: the settings files (0600, validated, passwords never shown), the
``arrow`` output format (empty, resumed at a journalled offset) and ``deliver``'s all-or-nothing
loading, including an unreachable database."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import yaml
from click.testing import CliRunner

from areamesh.cli import cli
from connector.transfer.output import PartialOutput
from connector.transfer.sinks import SinkSetting, deliver, get_sink, mask_dsn
from mesh.errors import Unavailable

PASSWORD = "pw-Sekr3t-do-not-show"
SCHEMA = pa.schema([("id", pa.int64()), ("day", pa.date32()), ("name", pa.string())])


def _batch(start: int, n: int) -> pa.RecordBatch:
    return pa.record_batch([pa.array(range(start, start + n), pa.int64()),
                            pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i)
                                      for i in range(start, start + n)], pa.date32()),
                            pa.array([f"名前{i}" for i in range(start, start + n)])], schema=SCHEMA)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["connector", "sink", *args])
    return result.exit_code, result.output


def _config(tmp_path: Path, doc: dict) -> str:
    path = tmp_path / "sink.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def test_sink_add_list_remove_keep_the_password_to_the_file(tmp_path: Path):
    data = tmp_path / "node"
    dsn = f"postgresql://loader:{PASSWORD}@db.example.lg.jp:5432/area?sslmode=require"
    code, out = _run("add", "--data-dir", str(data), "pg-main", "--config",
                     _config(tmp_path, {"adapter": "postgresql", "dsn": dsn, "table": "aed"}))
    assert code == 0, out
    assert PASSWORD not in out and "loader:***@db.example.lg.jp:5432/area" in out
    stored = data / "sinks" / "pg-main.yaml"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert yaml.safe_load(stored.read_text())["dsn"] == dsn        # the node needs it whole
    code, out = _run("add", "--data-dir", str(data), "files", "--config",
                     _config(tmp_path, {"adapter": "ndjson", "path": "/srv/out/aed.ndjson"}))
    assert code == 0, out

    code, out = _run("list", "--data-dir", str(data))
    assert code == 0 and PASSWORD not in out
    header, *rows = [line.split("\t") for line in out.strip().splitlines()]
    assert header == ["名前/name", "アダプタ/adapter", "接続先/target", "テーブル/table", "方式/mode"]
    assert rows == [["files", "ndjson", "/srv/out/aed.ndjson", "-", "-"],
                    ["pg-main", "postgresql",
                     "postgresql://loader:***@db.example.lg.jp:5432/area?sslmode=require", "aed", "-"]]
    code, out = _run("list", "--data-dir", str(data), "--json")
    assert code == 0 and PASSWORD not in out
    assert [s["name"] for s in json.loads(out)] == ["files", "pg-main"]

    # the same name again, a bad name, a config the adapter refuses: nothing stored
    cfg = _config(tmp_path, {"adapter": "postgresql", "dsn": dsn, "table": "x"})
    code, out = _run("add", "--data-dir", str(data), "pg-main", "--config", cfg)
    assert code == 1 and "sink_exists" in out
    code, out = _run("add", "--data-dir", str(data), "../evil", "--config", cfg)
    assert code == 2 and "invalid_sink_name" in out
    code, out = _run("add", "--data-dir", str(data), "no-table", "--config",
                     _config(tmp_path, {"adapter": "postgresql", "dsn": dsn}))
    assert code == 2 and "'table'" in out and PASSWORD not in out
    code, out = _run("add", "--data-dir", str(data), "no-adapter", "--config",
                     _config(tmp_path, {"adapter": "nope", "path": "x"}))
    assert code == 2 and "unknown adapter" in out
    assert sorted(p.name for p in (data / "sinks").glob("*.yaml")) == ["files.yaml", "pg-main.yaml"]

    code, out = _run("remove", "--data-dir", str(data), "files")
    assert code == 0, out
    code, out = _run("remove", "--data-dir", str(data), "files")
    assert code == 1 and "unknown_sink" in out
    code, out = _run("list", "--data-dir", str(data))
    assert [line.split("\t")[0] for line in out.strip().splitlines()[1:]] == ["pg-main"]


def test_dsn_masking():
    assert mask_dsn("postgresql://u:p@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_dsn("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_dsn("postgresql://h/db?user=u&password=p") == "postgresql://h/db?user=u&password=***"
    assert mask_dsn("host=h password='a b' dbname=d") == "host=h password=*** dbname=d"


def test_arrow_output_is_a_stream_also_when_empty_and_after_a_resume(tmp_path: Path):
    out = tmp_path / "got" / "data.arrow"
    empty = PartialOutput(out, "arrow", "e", with_rejects=False, schema=SCHEMA)
    empty.open()
    empty.write(_batch(0, 0))
    empty.commit()
    table = ipc.open_stream(out.read_bytes()).read_all()
    assert table.num_rows == 0 and table.schema == SCHEMA

    first = PartialOutput(out, "arrow", "r", with_rejects=False, schema=SCHEMA)
    first.open()
    first.write(_batch(0, 100))
    first.write(_batch(100, 100))
    _, (acked, _) = first.flush()          # what a journal would claim
    first.write(_batch(200, 50))           # written, never acknowledged: the stream broke
    first.close()
    again = PartialOutput(out, "arrow", "r", with_rejects=False, schema=SCHEMA)
    again.open(acked)                      # cut back to the acknowledged batch, resumed after it
    again.write(_batch(200, 100))
    again.write(_batch(300, 100))
    again.commit()
    table = ipc.open_stream(out.read_bytes()).read_all()
    assert table.schema == SCHEMA
    assert table.column("id").to_pylist() == list(range(400))      # nothing lost, nothing twice
    assert table.column("day")[399].as_py() == dt.date(2024, 1, 1) + dt.timedelta(days=399)
    assert not list(out.parent.glob(".*.part"))


def _stream(path: Path, *batches: pa.RecordBatch) -> Path:
    with ipc.new_stream(path, SCHEMA) as w:
        for b in batches:
            w.write_batch(b)
    return path


async def test_deliver_loads_all_or_nothing(tmp_path: Path):
    db = tmp_path / "t.sqlite"
    setting = SinkSetting("local-db", {"adapter": "sqlite", "path": str(db), "table": "t"})
    assert await deliver(_stream(tmp_path / "a.arrow", _batch(0, 10), _batch(10, 5)), setting,
                         data_dir=tmp_path) == 15
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*), sum(id) FROM t").fetchone() == (15, sum(range(15)))
    conn.close()
    # an empty dataset empties a replaced table (the table stays, with its columns)
    assert await deliver(_stream(tmp_path / "e.arrow"), setting, data_dir=tmp_path) == 0
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    conn.close()


async def test_an_unreachable_database_changes_nothing_and_names_no_password(tmp_path: Path):
    setting = SinkSetting("pg-away", {"adapter": "postgresql", "table": "t", "connect_timeout": 3,
                                      "dsn": f"postgresql://u:{PASSWORD}@127.0.0.1:1/test"})
    staging = _stream(tmp_path / "s.arrow", _batch(0, 3))
    with pytest.raises(Unavailable) as exc:
        await deliver(staging, setting, data_dir=tmp_path)
    err = exc.value
    assert err.code == "sink_load_failed" and err.details["sink"] == "pg-away"
    assert PASSWORD not in err.message + (err.message_ja or "") + json.dumps(err.to_json())
    assert "127.0.0.1:1" in err.message and f"sink load pg-away --file {staging}" in err.message
    assert staging.is_file()


def test_unknown_sink_is_not_found_at_the_field(tmp_path: Path):
    from mesh.errors import NotFound

    with pytest.raises(NotFound) as exc:
        get_sink(tmp_path, "no-such-sink")
    assert exc.value.code == "unknown_sink" and exc.value.details["field"] == "sink"

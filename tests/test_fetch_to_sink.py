"""Fetching an agreed dataset into a named sink between real connector processes: into a
PostgreSQL table and a SQLite table with the source's types, a sink that refuses the data (the
target unchanged, the verified staging file kept, ``sink load`` after the fix), the ``arrow``
format resumed after the provider dies, and the console's fetch form with a sink."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sqlite3
import uuid

import aiohttp
import asyncpg
import pyarrow.ipc as ipc
import pytest
import yaml

from connector.transfer.fetch import Fetcher

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness, wait_for
from .test_connector_console_accounts import _account, _sign_in
from .test_transfer import _KillAfter, small_window  # noqa: F401  (a fixture)
from .transfer_fixtures import agree, as_text, dataset_doc, setup_transfer_mesh, source_rows

pytestmark = pytest.mark.integration
PASSWORD = "pw-Sekr3t-do-not-show"
PG_DSN = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test"   # trust: any password works
HTML = {"Accept": "text/html"}


def _typed_rows(count: int) -> list[dict[str, object]]:
    base = dt.date(2024, 4, 1)
    return [{"全国地方公共団体コード": f"27{i % 10000:04d}", "市区町村名": f"市町村{i}",
             "人口総数": 1000 + i, "調査日": base + dt.timedelta(days=i % 365)}
            for i in range(1, count + 1)]


async def _typed_mesh(h: MeshHarness, rows: int):
    """The provider serves a CSV whose source declares 人口総数 int64 and 調査日 date32."""
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    folder = h.root / "feed"
    folder.mkdir()
    source = folder / "typed.csv"
    data = _typed_rows(rows)
    with source.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(data[0]))
        w.writeheader()
        w.writerows({**r, "調査日": r["調査日"].isoformat()} for r in data)
    doc = dataset_doc(source)
    doc["schema"] = {"fields": [{"name": "全国地方公共団体コード", "type": "string"},
                                {"name": "市区町村名", "type": "string"},
                                {"name": "人口総数", "type": "integer"},
                                {"name": "調査日", "type": "date"}]}
    doc["source"] = {"adapter": "csv", "path": source.name,
                     "types": {"人口総数": "int64", "調査日": "date32"}}
    desc = folder / "dataset.yaml"
    desc.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                             "--file", str(desc))
    assert rc == 0, err
    await h.start_connector("osaka", "--heartbeat-interval", "500ms")
    return data


async def _add_sink(h: MeshHarness, name: str, config: dict, node: str = "kakogawa") -> None:
    path = h.root / f"{name}.sink.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    rc, out, err = await h.cli("connector", "sink", "add", "--data-dir", str(h.root / node), name,
                               "--config", str(path))
    assert rc == 0, err
    assert PASSWORD not in out + err


async def _pg_rows(table: str) -> tuple[list[dict], dict[str, str]]:
    conn = await asyncpg.connect(PG_DSN)
    try:
        rows = [dict(r) for r in await conn.fetch(f'SELECT * FROM "{table}" ORDER BY "市区町村名"')]
        types = {r["column_name"]: r["data_type"] for r in await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1",
            table)}
        return rows, types
    finally:
        await conn.close()


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _by_name(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: r["市区町村名"])


@pytest.mark.timeout(300)
async def test_fetch_into_postgres_and_sqlite_keeps_types_and_a_failed_load_can_be_retried(
        harness: MeshHarness):
    h = harness
    source = await _typed_mesh(h, rows=1200)
    agreement = await agree(h)
    data_dir = h.root / "kakogawa"
    table, bad_table = f"sink_{uuid.uuid4().hex[:10]}", f"sinkbad_{uuid.uuid4().hex[:10]}"
    try:
        await _add_sink(h, "pg-main", {"adapter": "postgresql", "dsn": PG_DSN, "table": table})
        await _add_sink(h, "local-db", {"adapter": "sqlite", "path": "out/local.sqlite",
                                        "table": "population"})

        # into PostgreSQL: the rows, with integer and date columns
        rc, stdout, err = await h.cli("connector", "fetch", "--data-dir", str(data_dir),
                                      "--agreement", agreement, "--sink", "pg-main", "--json")
        assert rc == 0, err
        result = json.loads(stdout)
        assert result["records"] == 1200 and result["rows_loaded"] == 1200
        assert result["sink"]["name"] == "pg-main" and PASSWORD not in stdout + err
        assert "postgres:***@127.0.0.1:5432/test" in result["sink"]["target"]
        assert "loading into sink" in err and "loaded: 1,200" in err      # the loading phase shows
        rows, types = await _pg_rows(table)
        assert types == {"全国地方公共団体コード": "text", "市区町村名": "text", "人口総数": "bigint",
                         "調査日": "date"}
        assert _by_name(rows) == _by_name(source)       # ints stay ints, dates stay dates
        staging = data_dir / "sinks" / "staging"
        assert not list(staging.glob("*.arrow"))         # removed once loaded
        assert not list((data_dir / "transfers").glob("*/*.json"))

        # into SQLite (relative path: to the data directory); SQLite stores dates as ISO text
        rc, stdout, err = await h.cli("connector", "fetch", "--data-dir", str(data_dir),
                                      "--agreement", agreement, "--sink", "local-db")
        assert rc == 0, err
        assert "loaded 1,200 rows into sink local-db" in stdout
        db = sqlite3.connect(data_dir / "out" / "local.sqlite")
        try:
            decl = {r[1]: r[2] for r in db.execute('PRAGMA table_info("population")')}
            assert decl["人口総数"] == "INTEGER"
            got = db.execute('SELECT "全国地方公共団体コード", "市区町村名", "人口総数", "調査日" '
                             'FROM population').fetchall()
            assert all(type(r[2]) is int for r in got)
        finally:
            db.close()
        assert sorted(got, key=lambda r: r[1]) == [
            (r["全国地方公共団体コード"], r["市区町村名"], r["人口総数"], r["調査日"].isoformat())
            for r in _by_name(source)]

        # a table that exists with a column type the data does not fit: nothing changes there,
        # the verified staging file stays, the message says how to retry (and no password)
        await _pg(f'CREATE TABLE "{bad_table}" ("全国地方公共団体コード" text, "市区町村名" text, '
                  f'"人口総数" bigint, "調査日" boolean)')
        await _pg(f"""INSERT INTO "{bad_table}" VALUES ('x', 'sentinel', 1, true)""")
        await _add_sink(h, "pg-bad", {"adapter": "postgresql", "dsn": PG_DSN, "table": bad_table,
                                      "mode": "replace"})
        rc, _, err = await h.cli("connector", "fetch", "--data-dir", str(data_dir),
                                 "--agreement", agreement, "--sink", "pg-bad")
        assert rc != 0
        kept = staging / f"{agreement}.pg-bad.arrow"
        assert "sink_load_failed" in err and "pg-bad" in err and PASSWORD not in err
        assert f"sink load pg-bad --file {kept}" in err
        assert kept.is_file() and ipc.open_stream(kept.read_bytes()).read_all().num_rows == 1200
        rows, _ = await _pg_rows(bad_table)
        assert [(r["市区町村名"], r["調査日"]) for r in rows] == [("sentinel", True)]   # unchanged
        # fetching again does not silently replace the file waiting to be loaded
        rc, _, err = await h.cli("connector", "fetch", "--data-dir", str(data_dir),
                                 "--agreement", agreement, "--sink", "pg-bad")
        assert rc != 0 and "staging_pending" in err and kept.is_file()

        # fixed: the staging file loads and goes away
        await _pg(f'DROP TABLE "{bad_table}"')
        rc, stdout, err = await h.cli("connector", "sink", "load", "--data-dir", str(data_dir),
                                      "pg-bad", "--file", str(kept))
        assert rc == 0, err
        assert "loaded 1,200 rows" in stdout and not kept.exists()
        rows, types = await _pg_rows(bad_table)
        assert types["調査日"] == "date" and _by_name(rows) == _by_name(source)

        # the options that do not go together
        rc, _, err = await h.cli("connector", "fetch", "--data-dir", str(data_dir), "--agreement",
                                 agreement, "--sink", "pg-main", "--format", "csv")
        assert rc == 2 and "--format" in err
        rc, _, err = await h.cli("connector", "fetch", "--data-dir", str(data_dir), "--agreement",
                                 agreement, "--sink", "pg-main", "--out", str(h.root / "x.csv"))
        assert rc == 2 and "exactly one" in err
        rc, _, err = await h.cli("connector", "fetch", "--data-dir", str(data_dir), "--agreement",
                                 agreement, "--sink", "no-such-sink")
        assert rc != 0 and "unknown_sink" in err
    finally:
        await _pg(f'DROP TABLE IF EXISTS "{table}"; DROP TABLE IF EXISTS "{bad_table}"')


@pytest.mark.timeout(300)
async def test_arrow_format_resumed_mid_stream_reads_back_equal(harness: MeshHarness,
                                                                 small_window: int):  # noqa: F811
    h = harness
    provider, source = await setup_transfer_mesh(h, rows=300_000)
    agreement = await agree(h)
    out = h.root / "got" / "population.arrow"
    progress = _KillAfter(provider, batches=5)

    async def restart_provider(_delay: float) -> None:
        await provider.proc.wait()
        await provider.start()

    result = await Fetcher(h.root / "kakogawa", agreement, out, fmt="arrow", progress=progress,
                           batch_rows=5000, sleep=restart_provider).run()
    assert progress.killed and result.resumed >= 1 and result.resumed_after[0] >= 5
    table = ipc.open_stream(out.read_bytes()).read_all()
    assert table.num_rows == 300_000 and table.schema.names == list(source_rows(source)[0])
    assert [as_text(r) for r in table.to_pylist()] == source_rows(source)  # nothing lost or twice


async def _csrf(s: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    async with s.get(base + "/admin/transfers/new", headers=HTML) as r:
        assert r.status == 200, await r.text()
        text = await r.text()
        return re.search(r'name="csrf_token" value="([^"]+)"', text)[1], text


@pytest.mark.timeout(300)
async def test_console_fetch_into_a_sink(running: MeshHarness):
    h = running
    _provider, source = await setup_transfer_mesh(h, rows=700)
    consumer = await h.start_connector("kakogawa")
    base = f"http://127.0.0.1:{consumer.ready['http_port']}"
    agreement = await agree(h)
    data_dir = h.root / "kakogawa"
    await _add_sink(h, "local-db", {"adapter": "sqlite", "path": "out/console.sqlite",
                                    "table": "population"})
    await _add_sink(h, "pg-hidden", {"adapter": "postgresql", "dsn": PG_DSN, "table": "unused"})
    await _account(h, "kakogawa", "tanaka", "admin")
    admin, _ = await _sign_in(base, "tanaka")
    try:
        token, page = await _csrf(admin, base)
        assert 'value="local-db"' in page and "sqlite: out/console.sqlite" in page
        assert "postgres:***@127.0.0.1" in page and PASSWORD not in page
        assert "areamesh connector sink add" in page           # says how sinks are added
        form = {"agreement": agreement, "destination": "sink", "csrf_token": token}

        # a sink that does not exist (or was removed): the error at its field; JSON for programs
        async with admin.post(base + "/admin/transfers/new", headers=HTML,
                              data={**form, "sink": "no-such-sink"}, allow_redirects=False) as r:
            text = await r.text()
            assert r.status == 404 and 'id="f-sink-error"' in text
            assert re.search(r'<select id="f-sink"[^>]*f-sink-error', text)
        async with admin.post(base + "/admin/transfers/new", data={**form, "sink": "no-such-sink"},
                              allow_redirects=False) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_sink"
        async with admin.post(base + "/admin/transfers/new", headers=HTML,
                              data={**form, "sink": ""}, allow_redirects=False) as r:
            assert r.status == 400 and 'id="f-sink-error"' in await r.text()

        async with admin.post(base + "/admin/transfers/new", headers=HTML,
                              data={**form, "sink": "local-db", "file": "", "format": "ndjson"},
                              allow_redirects=False) as r:
            assert r.status == 303, await r.text()
            location = r.headers["Location"]
        job = location.rsplit("/", 1)[1]

        async def finished() -> dict | None:
            async with admin.get(base + "/admin/transfers/progress") as r:
                fetches = {f["job"]: f for f in (await r.json())["fetches"]}
            return fetches[job] if fetches[job]["state"] not in ("starting", "running") else None

        done = await wait_for(finished, timeout=60, what="the console's fetch into the sink")
        assert done["state"] == "done" and done["phase"] == "done", done
        assert done["destination"] == "sink" and done["sink"]["name"] == "local-db"
        assert done["records"] == 700 and done["loaded"] == 700 == done["load_total"]
        db = sqlite3.connect(data_dir / "out" / "console.sqlite")
        try:
            got = db.execute('SELECT * FROM population ORDER BY rowid').fetchall()
        finally:
            db.close()
        # typed by the dataset's schema (人口総数, 世帯数 integer; a blank 備考 is null)
        assert [list(as_text(dict(zip(r.keys(), g, strict=True))).values())
                for g, r in zip(got, source_rows(source), strict=True)] \
            == [list(r.values()) for r in source_rows(source)]
        assert isinstance(got[0][2], int) and None in {g[4] for g in got}
        assert not list((data_dir / "sinks" / "staging").glob("*.arrow"))
        async with admin.get(base + location, headers=HTML) as r:
            text = await r.text()
            assert r.status == 200 and "出力先 local-db への取得" in text
            assert 'data-field="phase">完了' in text and 'data-field="loaded">700' in text

        # the sink removed while the form was open: refused at the field
        rc, _, err = await h.cli("connector", "sink", "remove", "--data-dir", str(data_dir), "local-db")
        assert rc == 0, err
        token, page = await _csrf(admin, base)
        assert 'value="local-db"' not in page
        async with admin.post(base + "/admin/transfers/new", headers=HTML,
                              data={**form, "csrf_token": token, "sink": "local-db"},
                              allow_redirects=False) as r:
            text = await r.text()
            assert r.status == 404 and 'id="f-sink-error"' in text and "local-db" in text
    finally:
        await admin.close()


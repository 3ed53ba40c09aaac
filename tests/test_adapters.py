"""Built-in adapters: the shared contracts for each, then the bad inputs municipal data brings."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import socket
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pyarrow as pa
import pytest
from aiohttp import web

from connector.adapters.base import SinkError, SourceError
from connector.adapters.registry import get_adapter, load_adapters, open_sink, open_source
from mesh.errors import InvalidRequest, Unavailable
from tests.adapter_contract import SinkContract, SourceContract, read_rows, sample_batches

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
AED_HEADER = ("都道府県コード又は市区町村コード,NO,都道府県名,市区町村名,名称,名称_カナ,住所,方書,緯度,経度,"
              "設置位置,電話番号,内線番号,法人番号,団体名,利用可能曜日,開始時間,終了時間,"
              "利用可能日時特記事項,小児対応設備の有無,URL,備考")
ROWS = [{"code": "282014", "name": "姫路市", "note": "①番"},
        {"code": "282103", "name": "加古川市", "note": ""},
        {"code": "270008", "name": "大阪府", "note": "株式会社㈱"}]


def csv_text(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# ---------------------------------------------------------------- entry points and config


def test_entry_points_find_all_builtins():
    adapters = load_adapters()
    assert {"csv", "ndjson", "sqlite", "postgresql", "http_json", "ngsi_ld"} <= set(adapters)
    assert all(adapters[name].kind == name for name in adapters)


def test_unknown_adapter_lists_known_ones(tmp_path: Path):
    with pytest.raises(InvalidRequest) as err:
        open_source({"adapter": "excel", "path": "x.xlsx"}, tmp_path)
    assert "unknown adapter 'excel'" in err.value.message and "csv, http_json" in err.value.message
    assert err.value.message_ja
    with pytest.raises(InvalidRequest, match="'adapter' is required"):
        get_adapter({"path": "x.csv"})


@pytest.mark.parametrize(("config", "key"), [
    ({"adapter": "csv"}, "path"),
    ({"adapter": "csv", "path": "a.csv", "encoding": "latin-1"}, "encoding"),
    ({"adapter": "csv", "path": "a.csv", "on_bad_row": "ignore"}, "on_bad_row"),
    ({"adapter": "csv", "path": "a.csv", "types": {"a": "integer64"}}, "types"),
    ({"adapter": "ndjson", "path": "a.json", "format": "yaml"}, "format"),
    ({"adapter": "sqlite", "path": "a.db"}, "query"),
    ({"adapter": "postgresql", "query": "select 1"}, "dsn"),
    ({"adapter": "http_json"}, "url"),
    ({"adapter": "http_json", "url": "ftp://x"}, "url"),
    ({"adapter": "ngsi_ld", "broker": "http://127.0.0.1:1"}, "type"),
    ({"adapter": "ngsi_ld", "broker": "http://127.0.0.1:1", "type": "T", "limit": 0}, "limit"),
])
def test_missing_or_bad_config_names_the_key(tmp_path: Path, config: dict[str, Any], key: str):
    with pytest.raises(InvalidRequest) as err:
        open_source(config, tmp_path)
    assert f"'{key}'" in err.value.message
    assert err.value.message_ja


@pytest.mark.parametrize("adapter", ["http_json"])
def test_source_only_adapters_have_no_sink(tmp_path: Path, adapter: str):
    with pytest.raises(InvalidRequest, match="this adapter has no sink"):
        open_sink({"adapter": adapter}, tmp_path)    # ngsi_ld has one: tests/test_ngsi_ld_sink.py


# ---------------------------------------------------------------- CSV


class TestCsvUtf8Source(SourceContract):
    @pytest.fixture
    def source_config(self, base_dir: Path) -> dict[str, Any]:
        (base_dir / "data.csv").write_text(csv_text(ROWS), encoding="utf-8")
        return {"adapter": "csv", "path": "data.csv"}

    @pytest.fixture
    def expected_rows(self) -> list[dict[str, Any]]:
        return ROWS

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        with (base_dir / config["path"]).open("a", encoding="utf-8") as f:
            f.write("011002,札幌市,\n")


class TestCsvCp932DetectedSource(TestCsvUtf8Source):
    @pytest.fixture
    def source_config(self, base_dir: Path) -> dict[str, Any]:
        (base_dir / "data.csv").write_bytes(csv_text(ROWS).replace("\n", "\r\n").encode("cp932"))
        return {"adapter": "csv", "path": "data.csv"}


class TestCsvTypedBomSource(SourceContract):
    @pytest.fixture
    def source_config(self, base_dir: Path) -> dict[str, Any]:
        (base_dir / "t.csv").write_bytes("\ufeffcode,lat\n01,34.8\n02,\n03,35\n".encode())
        return {"adapter": "csv", "path": "t.csv", "types": {"lat": "float64"}}

    @pytest.fixture
    def expected_rows(self) -> list[dict[str, Any]]:
        return [{"code": "01", "lat": 34.8}, {"code": "02", "lat": None}, {"code": "03", "lat": 35.0}]

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        (base_dir / "t.csv").write_bytes(b"code,lat\n01,34.9\n")


class TestCsvSink(SinkContract):
    encoding = "utf-8"

    @pytest.fixture
    def sink_config(self, base_dir: Path) -> dict[str, Any]:
        return {"adapter": "csv", "path": "out/result.csv", "encoding": self.encoding}

    async def read_back(self, config: dict[str, Any], base_dir: Path) -> list[dict[str, Any]] | None:
        path = base_dir / config["path"]
        if not path.exists():
            return None
        source = open_source({**config, "types": {"count": "int64"}}, base_dir)
        return await read_rows(source)

    async def test_no_temp_files_left(self, sink_config: dict[str, Any], base_dir: Path) -> None:
        for finish in ("commit", "abort"):
            sink = open_sink(sink_config, base_dir)
            await sink.write(sample_batches()[0])
            await getattr(sink, finish)()
        assert [p.name for p in (base_dir / "out").iterdir()] == ["result.csv"]


class TestCsvCp932Sink(TestCsvSink):
    encoding = "cp932"

    async def test_bytes_are_cp932(self, sink_config: dict[str, Any], base_dir: Path) -> None:
        sink = open_sink(sink_config, base_dir)
        await sink.write(sample_batches()[0])
        await sink.commit()
        assert "姫路市".encode("cp932") in (base_dir / "out/result.csv").read_bytes()

    async def test_unencodable_character_is_named(self, sink_config: dict[str, Any], base_dir: Path) -> None:
        sink = open_sink(sink_config, base_dir)
        batch = pa.RecordBatch.from_pylist([{"name": "𠮷野家"}])
        with pytest.raises(SinkError, match="U\\+20BB7"):
            await sink.write(batch)
        await sink.abort()
        assert not (base_dir / "out/result.csv").exists()


def write(path: Path, data: bytes) -> dict[str, Any]:
    path.write_bytes(data)
    return {"adapter": "csv", "path": path.name}


async def test_csv_wrong_column_count_names_row(tmp_path: Path):
    config = write(tmp_path / "bad.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n")
    with pytest.raises(SourceError) as err:
        await read_rows(open_source(config, tmp_path))
    assert "row 3: expected 3 fields, got 2" in err.value.message
    assert err.value.details["row"] == 3 and err.value.message_ja


async def test_csv_skip_and_report_bad_rows(tmp_path: Path):
    config = write(tmp_path / "bad.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n")
    source = open_source({**config, "on_bad_row": "skip_and_report"}, tmp_path)
    assert await read_rows(source) == [{"a": "1", "b": "2", "c": "3"}, {"a": "10", "b": "11", "c": "12"}]
    assert [(r.row, r.actual_columns) for r in source.rejected] == [(3, 2), (4, 4)]


async def test_csv_broken_quoting(tmp_path: Path):
    config = write(tmp_path / "q.csv", b'a,b,c\n1,2,3\n4,"5,6\n7,8,9\n')
    with pytest.raises(SourceError) as err:
        await read_rows(open_source(config, tmp_path))
    assert "row 3" in err.value.message and "unbalanced quote" in err.value.message


async def test_csv_quoted_newlines_are_values(tmp_path: Path):
    config = write(tmp_path / "n.csv", 'a,備考\n1,"一行目\n二行目"\n'.encode())
    assert await read_rows(open_source(config, tmp_path)) == [{"a": "1", "備考": "一行目\n二行目"}]


async def test_csv_mixed_encodings_names_offset_and_line(tmp_path: Path):
    data = "a,b\n1,あ\n".encode() + "2,い\n".encode("cp932")
    config = write(tmp_path / "mix.csv", data)
    with pytest.raises(SourceError) as err:
        await read_rows(open_source(config, tmp_path))
    assert err.value.details == {"offset": 12, "line": 3, "encoding": "utf-8"}
    assert "byte offset 12 (line 3)" in err.value.message


async def test_csv_cp932_line_beyond_detection_sample(tmp_path: Path):
    data = b"a,b\n" + b"1,x\n" * 1_100_000 + "2,い\n".encode("cp932")  # > 4 MiB of ASCII first
    config = write(tmp_path / "late.csv", data)
    source = open_source(config, tmp_path)
    with pytest.raises(SourceError) as err:
        await read_rows(source)
    assert err.value.details["line"] == 1_100_002 and err.value.details["offset"] == 4 + 4 * 1_100_000 + 2


async def test_csv_declared_cp932_with_invalid_bytes(tmp_path: Path):
    config = write(tmp_path / "s.csv", "a,b\n1,あ\n".encode("cp932") + b"2,\x81\x7f\n")
    with pytest.raises(SourceError) as err:
        await read_rows(open_source({**config, "encoding": "shift_jis"}, tmp_path))
    assert err.value.details["line"] == 3 and "cp932" in err.value.message


async def test_csv_one_megabyte_field(tmp_path: Path):
    big = "長" * 400_000  # 1.2 MB in UTF-8
    config = write(tmp_path / "big.csv", f'a,b\n1,"{big}"\n2,x\n'.encode())
    rows = await read_rows(open_source(config, tmp_path))
    assert rows[0]["b"] == big and rows[1] == {"a": "2", "b": "x"}


async def test_csv_row_longer_than_block_size_says_what_to_do(tmp_path: Path):
    config = write(tmp_path / "big.csv", b"a,b\n1," + b"x" * 200_000 + b"\n")
    with pytest.raises(SourceError, match="block_size"):
        await read_rows(open_source({**config, "block_size": 65536}, tmp_path))


def _blocks_csv(path: Path, rows: int, bad_at: int | None = None) -> dict[str, Any]:
    """A CSV of ``rows`` numbered rows spanning many 64 KiB blocks; ``bad_at``: that data row
    has a field too many."""
    lines = [b"n,text"] + [f"{i},{'x' * 90}".encode() + (b",extra" if i == bad_at else b"")
                           for i in range(rows)]
    return {**write(path, b"\n".join(lines) + b"\n"), "block_size": 65536}


async def test_csv_reads_ahead_in_order(tmp_path: Path):
    """The next block is parsed while the current one's batches are used: every row, in order,
    and a bad row in the block after the first is already reported while the first is used."""
    config = _blocks_csv(tmp_path / "big.csv", 20_000, bad_at=1_000)
    source = open_source({**config, "on_bad_row": "skip_and_report"}, tmp_path)
    batches = source.read(batch_rows=100)
    first = await anext(batches)
    assert first.column("n").to_pylist() == [str(i) for i in range(100)]
    for _ in range(50):                 # block 2 (rows ~650–1,300) is read in the background
        if source.rejected:
            break
        await asyncio.sleep(0.01)
    assert [r.row for r in source.rejected] == [1_002]
    rest = [v for b in [b async for b in batches] for v in b.column("n").to_pylist()]
    assert rest == [str(i) for i in range(100, 20_000) if i != 1_000]


async def test_csv_stopping_early_closes_the_reader_quietly(tmp_path: Path, caplog):
    """A reader stopped while a block is read ahead waits for it and closes; the failure of a
    block nobody asked for is not raised, and is raised when it is asked for."""
    config = _blocks_csv(tmp_path / "big.csv", 20_000, bad_at=1_000)
    source = open_source(config, tmp_path)
    batches = source.read(batch_rows=100)
    assert len(await anext(batches)) == 100
    await batches.aclose()              # the block read ahead holds the bad row
    assert "exception was never retrieved" not in caplog.text
    with pytest.raises(SourceError, match="row 1002"):
        await read_rows(open_source(config, tmp_path))


@pytest.mark.parametrize("encoding", ["shift_jis", "cp932", "auto"])
async def test_csv_shift_jis_aed_file(tmp_path: Path, encoding: str):
    fields = AED_HEADER.split(",")
    values = ["282014", "1", "兵庫県", "姫路市", "姫路市役所", "ヒメジシヤクショ",
              "兵庫県姫路市安田四丁目1番地", "", "34.8154", "134.6854", "1階 正面玄関", "079-221-2111",
              "", "", "姫路市", "月火水木金", "08:35", "17:20", "", "有", "https://www.city.himeji.lg.jp/",
              "なし" if encoding == "shift_jis" else "①"]  # ① exists in CP932 only
    text = AED_HEADER + "\r\n" + ",".join(values) + "\r\n"
    config = write(tmp_path / "aed.csv", text.encode("shift_jis" if encoding == "shift_jis" else "cp932"))
    source = open_source({**config, "encoding": encoding, "types": {"緯度": "float64", "経度": "float64"}},
                         tmp_path)
    schema = await source.schema()
    assert schema.names == fields
    assert source.encoding == "cp932"
    [row] = await read_rows(source)
    assert row["都道府県コード又は市区町村コード"] == "282014" and row["緯度"] == 34.8154
    assert row["名称_カナ"] == "ヒメジシヤクショ" and row["備考"] == values[-1]


async def test_csv_empty_and_missing_files(tmp_path: Path):
    config = write(tmp_path / "empty.csv", b"")
    with pytest.raises(SourceError, match="empty"):
        await read_rows(open_source(config, tmp_path))
    with pytest.raises(SourceError, match="not found"):
        await read_rows(open_source({"adapter": "csv", "path": "nope.csv"}, tmp_path))


# ---------------------------------------------------------------- NDJSON / JSON


NDJSON_ROWS = [{"id": 1, "name": "姫路城", "lat": 34.8394, "tags": ["世界遺産"]},
               {"id": 2, "name": "好古園", "lat": None, "tags": []},
               {"id": 3, "name": "書写山", "lat": 34.8896, "tags": None}]


def ndjson_expected() -> list[dict[str, Any]]:
    return [{**r, "tags": None if r["tags"] is None else json.dumps(r["tags"], ensure_ascii=False)}
            for r in NDJSON_ROWS]


class TestNdjsonSource(SourceContract):
    @pytest.fixture
    def source_config(self, base_dir: Path) -> dict[str, Any]:
        lines = [json.dumps(r, ensure_ascii=False) for r in NDJSON_ROWS]
        (base_dir / "spots.ndjson").write_text("\n".join(lines[:2]) + "\n\n" + lines[2] + "\n")
        return {"adapter": "ndjson", "path": "spots.ndjson"}

    @pytest.fixture
    def expected_rows(self) -> list[dict[str, Any]]:
        return ndjson_expected()

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        with (base_dir / config["path"]).open("a") as f:
            f.write('{"id": 4, "name": "x"}\n')


class TestJsonArraySource(TestNdjsonSource):
    @pytest.fixture
    def source_config(self, base_dir: Path) -> dict[str, Any]:
        (base_dir / "spots.json").write_text(json.dumps(NDJSON_ROWS, ensure_ascii=False, indent=1))
        return {"adapter": "ndjson", "path": "spots.json"}

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        (base_dir / config["path"]).write_text(json.dumps(NDJSON_ROWS[:1]))


class TestNdjsonSink(SinkContract):
    @pytest.fixture
    def sink_config(self, base_dir: Path) -> dict[str, Any]:
        return {"adapter": "ndjson", "path": "out.ndjson"}

    async def read_back(self, config: dict[str, Any], base_dir: Path) -> list[dict[str, Any]] | None:
        path = base_dir / config["path"]
        if not path.exists():
            return None
        return [json.loads(line) for line in path.read_text().splitlines()]


async def test_ndjson_broken_line(tmp_path: Path):
    (tmp_path / "b.ndjson").write_text('{"a": 1}\n{"a": 2}\n{"a": 3,\n{"a": 4}\n')
    with pytest.raises(SourceError) as err:
        await read_rows(open_source({"adapter": "ndjson", "path": "b.ndjson"}, tmp_path))
    assert "line 3: invalid JSON" in err.value.message and err.value.details == {"line": 3}


async def test_ndjson_type_change_names_line(tmp_path: Path):
    (tmp_path / "t.ndjson").write_text('{"a": 1}\n{"a": 2}\n{"a": true}\n')
    source = open_source({"adapter": "ndjson", "path": "t.ndjson", "infer_rows": 2}, tmp_path)
    with pytest.raises(SourceError, match="line 3: field 'a'"):
        await read_rows(source)


async def test_ndjson_non_object_and_bad_array(tmp_path: Path):
    (tmp_path / "x.ndjson").write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(SourceError, match="line 2: expected a JSON object"):
        await read_rows(open_source({"adapter": "ndjson", "path": "x.ndjson"}, tmp_path))
    (tmp_path / "y.json").write_text('[{"a": 1},\n {"a": 2,,}]')
    with pytest.raises(SourceError, match="line 2 column"):
        await read_rows(open_source({"adapter": "ndjson", "path": "y.json"}, tmp_path))


# ---------------------------------------------------------------- SQLite


class TestSqliteSource(SourceContract):
    @pytest.fixture
    def source_config(self, base_dir: Path) -> dict[str, Any]:
        with sqlite3.connect(base_dir / "m.db") as db:
            db.execute("CREATE TABLE t (code TEXT, name TEXT, n INTEGER, x REAL)")
            db.executemany("INSERT INTO t VALUES (?, ?, ?, ?)",
                           [("282014", "姫路市", 1, 1.5), ("282103", "加古川市", None, 2.0),
                            ("270008", "大阪府", 3, None)])
        db.close()
        return {"adapter": "sqlite", "path": "m.db", "query": "SELECT code, name, n, x FROM t ORDER BY n"}

    @pytest.fixture
    def expected_rows(self) -> list[dict[str, Any]]:
        return [{"code": "282103", "name": "加古川市", "n": None, "x": 2.0},
                {"code": "282014", "name": "姫路市", "n": 1, "x": 1.5},
                {"code": "270008", "name": "大阪府", "n": 3, "x": None}]

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        db = sqlite3.connect(base_dir / config["path"])
        with db:
            db.execute("INSERT INTO t VALUES ('011002', '札幌市', 4, 0.5)")
        db.close()


async def test_sqlite_source_is_read_only_and_reports_sql_errors(tmp_path: Path):
    sqlite3.connect(tmp_path / "m.db").execute("CREATE TABLE t (a)").connection.close()
    source = open_source({"adapter": "sqlite", "path": "m.db", "query": "DELETE FROM t"}, tmp_path)
    with pytest.raises(SourceError, match="readonly"):
        await read_rows(source)
    source = open_source({"adapter": "sqlite", "path": "m.db", "query": "SELECT * FROM nope"}, tmp_path)
    with pytest.raises(SourceError, match="no such table"):
        await source.schema()


class TestSqliteSink(SinkContract):
    @pytest.fixture
    def sink_config(self, base_dir: Path) -> dict[str, Any]:
        return {"adapter": "sqlite", "path": "sink.db", "table": "市区町村"}

    async def read_back(self, config: dict[str, Any], base_dir: Path) -> list[dict[str, Any]] | None:
        path = base_dir / config["path"]
        if not path.exists():
            return None
        db = sqlite3.connect(path)
        try:
            rows = db.execute(f'SELECT code, name, count FROM "{config["table"]}"').fetchall()
        except sqlite3.OperationalError:
            return None
        finally:
            db.close()
        return [{"code": c, "name": n, "count": k} for c, n, k in rows]


# ---------------------------------------------------------------- PostgreSQL


async def _pg() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:  # pragma: no cover - environment
        pytest.skip(f"PostgreSQL at {PG_DSN} not reachable: {exc}")


@pytest.fixture
async def pg_table():
    """A unique table name in the test database, dropped afterwards."""
    name = f"areamesh_test_{uuid.uuid4().hex[:12]}"
    conn = await _pg()
    yield conn, name
    await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
    await conn.close()


class TestPostgresSource(SourceContract):
    @pytest.fixture
    async def source_config(self, pg_table: tuple[asyncpg.Connection, str]) -> dict[str, Any]:
        conn, name = pg_table
        await conn.execute(f'CREATE TABLE "{name}" (id int PRIMARY KEY, name text, amount numeric, '
                           f'day date, ok boolean)')
        await conn.execute(f"""INSERT INTO "{name}" VALUES (1, '姫路市', 12.50, '2024-04-01', true),
                               (2, '加古川市', NULL, NULL, false), (3, '大阪府', 3, '2024-05-01', NULL)""")
        return {"adapter": "postgresql", "dsn": PG_DSN, "query": f'SELECT * FROM "{name}" ORDER BY id',
                "table_for_test": name}

    @pytest.fixture
    def expected_rows(self) -> list[dict[str, Any]]:
        import datetime as dt
        return [{"id": 1, "name": "姫路市", "amount": "12.50", "day": dt.date(2024, 4, 1), "ok": True},
                {"id": 2, "name": "加古川市", "amount": None, "day": None, "ok": False},
                {"id": 3, "name": "大阪府", "amount": "3", "day": dt.date(2024, 5, 1), "ok": None}]

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        conn = await _pg()
        await conn.execute(f"UPDATE \"{config['table_for_test']}\" SET name = '姫路市役所' WHERE id = 1")
        await conn.close()

    async def test_schema_types_come_from_postgres(self, source) -> None:
        schema = await source.schema()
        assert [str(f.type) for f in schema] == ["int32", "string", "string", "date32[day]", "bool"]


async def test_postgres_fingerprint_query(pg_table: tuple[asyncpg.Connection, str], tmp_path: Path):
    conn, name = pg_table
    await conn.execute(f'CREATE TABLE "{name}" (id int, updated_at timestamptz DEFAULT now())')
    await conn.execute(f'INSERT INTO "{name}" (id) VALUES (1)')
    source = open_source({"adapter": "postgresql", "dsn": PG_DSN, "query": f'SELECT * FROM "{name}"',
                          "fingerprint_query": f'SELECT max(updated_at), count(*) FROM "{name}"'}, tmp_path)
    first = await source.fingerprint()
    assert await source.fingerprint() == first
    await conn.execute(f'INSERT INTO "{name}" (id) VALUES (2)')
    assert await source.fingerprint() != first


class TestPostgresSink(SinkContract):
    @pytest.fixture
    def sink_config(self, pg_table: tuple[asyncpg.Connection, str]) -> dict[str, Any]:
        return {"adapter": "postgresql", "dsn": PG_DSN, "table": f"public.{pg_table[1]}"}

    async def read_back(self, config: dict[str, Any], base_dir: Path) -> list[dict[str, Any]] | None:
        conn = await _pg()
        try:
            rows = await conn.fetch(f'SELECT code, name, count FROM public."{config["table"][7:]}"')
        except asyncpg.UndefinedTableError:
            return None
        finally:
            await conn.close()
        return [dict(r) for r in rows]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_postgres_unreachable_is_unavailable(tmp_path: Path):
    dsn = f"postgresql://postgres:s3cret@127.0.0.1:{closed_port()}/test"
    source = open_source({"adapter": "postgresql", "dsn": dsn, "query": "SELECT 1"}, tmp_path)
    with pytest.raises(Unavailable) as err:
        await source.schema()
    assert "cannot connect to PostgreSQL at 127.0.0.1:" in err.value.message
    assert "s3cret" not in err.value.message and err.value.message_ja
    sink = open_sink({"adapter": "postgresql", "dsn": dsn, "table": "t"}, tmp_path)
    with pytest.raises(Unavailable):
        await sink.write(sample_batches()[0])
    await sink.abort()


async def test_postgres_bad_query_is_source_error(tmp_path: Path):
    await (await _pg()).close()
    source = open_source({"adapter": "postgresql", "dsn": PG_DSN, "query": "SELECT * FROM no_such_t"},
                         tmp_path)
    with pytest.raises(SourceError, match="no_such_t"):
        await read_rows(source)


# ---------------------------------------------------------------- HTTP servers on 127.0.0.1


class FakeApi:
    """A JSON API with page/per_page paging, next links, an NGSI-LD entities endpoint and a 500."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = [{"id": i, "name": f"施設{i}", "open": i % 2 == 0}
                                            for i in range(1, 6)]
        self.entities: list[dict[str, Any]] = [entity(i) for i in range(1, 6)]
        self.seen_headers: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_get("/paged", self.paged)
        self.app.router.add_get("/cursor", self.cursor)
        self.app.router.add_get("/ngsi-ld/v1/entities", self.ngsi)
        self.app.router.add_get("/broken", self.broken)
        self.app.router.add_get("/notjson", self.notjson)
        self.app.router.add_get("/big", self.big)

    def etag(self) -> str:
        return '"' + hashlib.sha256(json.dumps(self.items).encode()).hexdigest()[:16] + '"'

    async def paged(self, request: web.Request) -> web.Response:
        page, per = int(request.query["page"]), int(request.query["per_page"])
        chunk = self.items[(page - 1) * per:page * per]
        return web.json_response({"result": {"records": chunk}}, headers={"ETag": self.etag()})

    async def cursor(self, request: web.Request) -> web.Response:
        start = int(request.query.get("after", 0))
        chunk = self.items[start:start + 2]
        more = start + 2 < len(self.items)
        link = f"cursor?after={start + 2}" if more else None
        return web.json_response({"data": chunk, "links": {"next": link}})

    async def ngsi(self, request: web.Request) -> web.Response:
        self.seen_headers.append(dict(request.headers))
        limit, offset = int(request.query["limit"]), int(request.query.get("offset", 0))
        matching = [e for e in self.entities if e["type"] == request.query["type"]]
        return web.json_response(matching[offset:offset + limit])

    async def broken(self, request: web.Request) -> web.Response:
        return web.json_response({"title": "Internal error", "detail": "database down"}, status=500)

    async def big(self, request: web.Request) -> web.Response:
        return web.json_response([{"id": i, "name": f"施設{i}" * 20} for i in range(5000)])

    async def notjson(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")


def entity(i: int) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:AED:{i:03d}", "type": "AED",
            "name": {"type": "Property", "value": f"AED {i}"},
            "available": {"type": "Property", "value": i != 2},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [134.68 + i, 34.81]}},
            "refBuilding": {"type": "Relationship", "object": f"urn:ngsi-ld:Building:{i}"},
            "installedAt": {"type": "Property",
                            "value": {"@type": "DateTime", "@value": f"2024-0{i}-01T00:00:00Z"}}}


@pytest.fixture
async def api():
    fake = FakeApi()
    runner = web.AppRunner(fake.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.base = f"http://{host}:{port}"
    yield fake
    await runner.cleanup()


class TestHttpJsonPagedSource(SourceContract):
    @pytest.fixture
    def source_config(self, api: FakeApi) -> dict[str, Any]:
        self.api = api
        return {"adapter": "http_json", "url": f"{api.base}/paged", "items": "/result/records",
                "page_param": "page", "per_page_param": "per_page", "per_page": 2}

    @pytest.fixture
    def expected_rows(self, api: FakeApi) -> list[dict[str, Any]]:
        return list(api.items)

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        self.api.items.append({"id": 6, "name": "施設6", "open": True})


class TestHttpJsonNextLinkSource(TestHttpJsonPagedSource):
    @pytest.fixture
    def source_config(self, api: FakeApi) -> dict[str, Any]:
        self.api = api
        return {"adapter": "http_json", "url": f"{api.base}/cursor", "items": "data", "next": "links.next"}

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        self.api.items[0]["name"] = "施設一"


async def test_http_500_is_unavailable_with_message(api: FakeApi, tmp_path: Path):
    source = open_source({"adapter": "http_json", "url": f"{api.base}/broken"}, tmp_path)
    with pytest.raises(Unavailable) as err:
        await read_rows(source)
    assert "HTTP 500" in err.value.message and "database down" in err.value.message
    assert err.value.details["status"] == 500


async def test_http_invalid_json_and_404(api: FakeApi, tmp_path: Path):
    with pytest.raises(SourceError, match="not valid JSON"):
        await read_rows(open_source({"adapter": "http_json", "url": f"{api.base}/notjson"}, tmp_path))
    with pytest.raises(SourceError, match="HTTP 404"):
        await read_rows(open_source({"adapter": "http_json", "url": f"{api.base}/nope"}, tmp_path))


async def test_http_items_path_must_point_at_an_array(api: FakeApi, tmp_path: Path):
    source = open_source({"adapter": "http_json", "url": f"{api.base}/cursor", "items": "links"}, tmp_path)
    with pytest.raises(SourceError, match="expected a JSON array at 'links'"):
        await read_rows(source)


async def test_http_large_answer_arrives_whole(api: FakeApi, tmp_path: Path):
    """A 700 kB answer comes in many chunks: all of it is read, not the first chunk only."""
    rows = await read_rows(open_source({"adapter": "http_json", "url": f"{api.base}/big"}, tmp_path))
    assert len(rows) == 5000 and rows[-1]["id"] == 4999


async def test_http_connection_refused_is_unavailable(tmp_path: Path):
    source = open_source({"adapter": "http_json", "url": f"http://127.0.0.1:{closed_port()}/x"}, tmp_path)
    with pytest.raises(Unavailable):
        await read_rows(source)


class TestNgsiLdSource(SourceContract):
    @pytest.fixture
    def source_config(self, api: FakeApi) -> dict[str, Any]:
        self.api = api
        api.entities.append({"id": "urn:ngsi-ld:Other:1", "type": "Other"})
        return {"adapter": "ngsi_ld", "broker": api.base, "type": "AED", "limit": 2,
                "context": "https://example.org/context.jsonld"}

    @pytest.fixture
    def expected_rows(self) -> list[dict[str, Any]]:
        return [{"id": f"urn:ngsi-ld:AED:{i:03d}", "type": "AED", "name": f"AED {i}", "available": i != 2,
                 "location_lon": 134.68 + i, "location_lat": 34.81,
                 "refBuilding": f"urn:ngsi-ld:Building:{i}", "installedAt": f"2024-0{i}-01T00:00:00Z"}
                for i in range(1, 6)]

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        self.api.entities[0]["available"]["value"] = False

    async def test_link_header_and_pages(self, source) -> None:
        await source.schema()
        self.api.seen_headers.clear()
        await read_rows(source)
        link = self.api.seen_headers[-1]["Link"]
        assert link.startswith("<https://example.org/context.jsonld>;") and "json-ld#context" in link
        assert len(self.api.seen_headers) == 3  # 2 + 2 + 1 entities


async def test_ngsi_ld_broker_error(api: FakeApi, tmp_path: Path):
    source = open_source({"adapter": "ngsi_ld", "broker": f"http://127.0.0.1:{closed_port()}", "type": "AED"},
                         tmp_path)
    with pytest.raises(Unavailable):
        await source.schema()

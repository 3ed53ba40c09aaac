"""CSV for Excel (``fetch --format csv --excel``): UTF-8 with one BOM, CRLF line ends, quoted
cells, also across a resumed transfer; and the console's fetch form offers it."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pytest

from connector.transfer.fetch import Fetcher
from connector.transfer.journal import TransferJournal
from connector.transfer.output import UTF8_BOM, PartialOutput
from mesh.errors import Unavailable

from .test_transfer import _KillAfter, small_window  # noqa: F401 (fixture)
from .transfer_fixtures import agree, as_text, fetch_cli, setup_transfer_mesh, source_rows

BATCH = pa.record_batch({"団体コード": ["012025", "282014"], "名称": ["函館市", "姫路市"],
                         "備考": ["一行目\n二行目", "カンマ, と \"引用符\""], "人口": [1, None]})


def _read(path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def test_excel_csv_has_one_bom_crlf_and_quoted_cells(tmp_path):
    out = tmp_path / "out.csv"
    output = PartialOutput(out, "csv-excel", "t1", with_rejects=False)
    output.open()
    output.write(BATCH)
    output.commit()
    data = out.read_bytes()
    assert data.startswith(UTF8_BOM) and data.count(UTF8_BOM) == 1
    lines = data[3:].split(b"\r\n")
    assert lines[0] == '"団体コード","名称","備考","人口"'.encode()
    assert b"\r\n" not in data.replace(b"\r\n", b"") and data.endswith(b"\r\n")  # CRLF only
    assert '"一行目\n二行目"'.encode() in data  # the line break stays inside its quoted cell
    assert _read(out) == [["団体コード", "名称", "備考", "人口"],
                          ["012025", "函館市", "一行目\n二行目", "1"],
                          ["282014", "姫路市", 'カンマ, と "引用符"', ""]]
    plain = tmp_path / "plain.csv"
    output = PartialOutput(plain, "csv", "t1", with_rejects=False)
    output.open()
    output.write(BATCH)
    output.commit()
    assert not plain.read_bytes().startswith(UTF8_BOM) and b"\r\n" not in plain.read_bytes()


def test_a_resumed_excel_csv_keeps_one_bom_and_one_header(tmp_path):
    out = tmp_path / "out.csv"
    first = PartialOutput(out, "csv-excel", "t1", with_rejects=False)
    first.open()
    first.write(BATCH)
    _fds, (acked, _) = first.flush()  # what a journal records at an acknowledged batch
    first.write(BATCH)               # written, never acknowledged: cut away on resume
    first.close()
    assert not out.exists()
    again = PartialOutput(out, "csv-excel", "t1", with_rejects=False)
    again.open(acked)
    again.write(BATCH.slice(1))
    again.commit()
    data = out.read_bytes()
    assert data.count(UTF8_BOM) == 1 and data.count("団体コード".encode()) == 1
    assert [r[0] for r in _read(out)] == ["団体コード", "012025", "282014", "282014"]


@pytest.mark.integration
async def test_fetch_excel_csv_resumes_after_an_interruption(harness, small_window):  # noqa: F811
    h = harness
    provider, source = await setup_transfer_mesh(h, rows=300_000)
    agreement = await agree(h)
    out = h.root / "got" / "population.csv"
    with pytest.raises(Unavailable):
        await Fetcher(h.root / "kakogawa", agreement, out, fmt="csv-excel", batch_rows=5000,
                      progress=_KillAfter(provider, batches=4), attempts=1).run()
    journal_path = TransferJournal.path_for(h.root / "kakogawa", agreement, out)
    assert json.loads(journal_path.read_text())["data_offset"] > 0  # resumed past the BOM
    await provider.proc.wait()
    await provider.start()
    rc, result, err = await fetch_cli(h, agreement, out, "--format", "csv", "--excel")
    assert rc == 0, err
    assert result["records"] == 300_000
    data = out.read_bytes()
    assert data.startswith(UTF8_BOM) and data.count(UTF8_BOM) == 1
    assert data.count(b"\n") == data.count(b"\r\n") == 300_001
    text = data[3:].decode()
    assert [as_text(r) for r in csv.DictReader(io.StringIO(text, newline=""))] == source_rows(source)

    rc, _, err = await fetch_cli(h, agreement, h.root / "got" / "x.csv", "--format", "ndjson",
                                 "--excel")
    assert rc == 2 and "--excel" in err


@pytest.mark.integration
@pytest.mark.timeout(300)
async def test_console_fetch_form_offers_excel_csv(running):
    import re

    from .conftest import wait_for
    from .test_connector_console_accounts import _account, _sign_in

    h = running
    _provider, source = await setup_transfer_mesh(h, rows=50)
    consumer = await h.start_connector("kakogawa")
    base = f"http://127.0.0.1:{consumer.ready['http_port']}"
    agreement = await agree(h)
    await _account(h, "kakogawa", "tanaka", "admin")
    admin, _ = await _sign_in(base, "tanaka")
    try:
        async with admin.get(base + "/admin/transfers/new", headers={"Accept": "text/html"}) as r:
            text = await r.text()
            assert r.status == 200
        assert re.search(r'<option value="csv-excel">CSV（Excel 用', text)
        token = re.search(r'name="csrf_token" value="([^"]+)"', text)[1]
        async with admin.post(base + "/admin/transfers/new", headers={"Accept": "text/html"},
                              data={"agreement": agreement, "format": "csv-excel", "csrf_token": token,
                                    "file": "population.csv"}, allow_redirects=False) as r:
            assert r.status == 303, await r.text()
        out = h.root / "kakogawa" / "downloads" / "population.csv"
        async def written() -> bool:
            return out.exists()

        await wait_for(written, timeout=30, what="the console's fetch to write its file")
        data = out.read_bytes()
        assert data.startswith(UTF8_BOM) and data.count(b"\n") == data.count(b"\r\n") == 51
        assert [as_text(r) for r in csv.DictReader(io.StringIO(data[3:].decode(), newline=""))] \
            == source_rows(source)
    finally:
        await admin.close()

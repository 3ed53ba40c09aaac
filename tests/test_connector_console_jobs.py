"""The console's fetch jobs without processes: file names confined to the downloads folder, a
job's progress from the fetch's hooks, and shutdown cancelling running fetches; the health
flags the overview's badges show (certificate expiry, revocation list freshness)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from connector.metering.store import UsageStore, open_metering_db
from connector.transfer.journal import TransferJournal
from connector.web.node.common import certificate_info, revocation_info
from connector.web.transfers.jobs import FetchJobs, check_file_name, download_path
from mesh.errors import Conflict, InvalidRequest, Unavailable
from mesh.proto.areamesh.v1 import peer_pb2

BAD = ["", "../x", "/etc/passwd", "a/b", "a\\b", "..", ".", ".hidden", " x", "x ", "-rf",
       "x\x00y", "x\ny", "C:x", "x" * 121, "out.rejects.csv", "x.part", "x\u202ey"]


@pytest.mark.parametrize("name", BAD)
def test_bad_file_names_are_refused(name: str, tmp_path: Path):
    with pytest.raises(InvalidRequest) as err:
        download_path(tmp_path, name)
    assert err.value.code == "invalid_file_name" and err.value.http_status == 400


@pytest.mark.parametrize("name", ["aed.csv", "人口_2026.ndjson", "x", "data-1.2.raw"])
def test_plain_names_stay_in_downloads(name: str, tmp_path: Path):
    assert check_file_name(name) == name
    assert download_path(tmp_path, name) == tmp_path / "downloads" / name


class FakeFetcher:
    """Feeds the progress hooks like ``Fetcher`` does, then waits for ``release``."""

    release: asyncio.Event
    fail: bool = False

    def __init__(self, data_dir, agreement_id, out, *, progress, **kw) -> None:
        self.progress, self.agreement_id, self.out = progress, agreement_id, out

    async def run(self):
        journal = TransferJournal(self.agreement_id, str(self.out), "ndjson", "")
        header = peer_pb2.TransferHeader(transfer_id="t-1", dataset_id="d-1", version="v1")
        self.progress.start(header, journal)
        journal.records, journal.bytes, journal.acked_seq = 10, 1000, 1
        self.progress.advance(journal)
        await FakeFetcher.release.wait()
        if FakeFetcher.fail:
            raise Unavailable("provider gone", message_ja="提供元に接続できません",
                              code="transfer_interrupted")
        raise AssertionError("not reached in these tests")


async def test_progress_conflicts_failure_and_shutdown(tmp_path: Path):
    FakeFetcher.release = asyncio.Event()
    jobs = FetchJobs(tmp_path, fetcher=FakeFetcher)
    out = download_path(tmp_path, "a.ndjson")
    job = jobs.start("agr-1", out, fmt="ndjson", started_by="tanaka")
    await asyncio.sleep(0.01)
    view = job.to_json()
    assert (view["state"], view["records"], view["bytes"], view["batches"]) == ("running", 10, 1000, 1)
    assert view["transfer_id"] == "t-1" and view["dataset_id"] == "d-1" and view["file"] == "a.ndjson"
    with pytest.raises(Conflict):                      # one fetch at a time into one file
        jobs.start("agr-1", out, fmt="ndjson")
    other = jobs.start("agr-1", download_path(tmp_path, "b.ndjson"), fmt="ndjson")

    FakeFetcher.fail = True
    FakeFetcher.release.set()
    await asyncio.sleep(0.01)
    assert job.state == other.state == "failed"
    assert job.to_json()["error"]["code"] == "transfer_interrupted" and job.ended_at

    FakeFetcher.release = asyncio.Event()
    async with open_metering_db(tmp_path) as db:         # the row the real fetch would insert
        await UsageStore(db).start(id="t-1", role="consumer", agreement_id="agr-1",
                                   dataset_id="d-1", provider="p", consumer="c", version="v1",
                                   incremental=False)
    running = jobs.start("agr-1", out, fmt="ndjson")     # the file is free again
    await asyncio.sleep(0.01)
    await jobs.close()                                  # the app's cleanup: cancelled, awaited
    assert running.state == "cancelled" and running.task.done()
    async with open_metering_db(tmp_path) as db:
        row = await UsageStore(db).get("t-1")
    assert (row.status, row.records, row.batches) == ("interrupted", 10, 1)
    assert [j.id for j in jobs.all()] == [running.id, other.id, job.id]


def _cert(days: float):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    from mesh.keystore import generate_key

    key, now = generate_key(), datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "main")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0xABC)
            .not_valid_before(now - timedelta(days=20)).not_valid_after(now + timedelta(days=days))
            .sign(key, hashes.SHA256()))


@pytest.mark.parametrize(("days", "warn", "expired"), [(29, False, False), (13.5, True, False),
                                                       (-1, True, True)])
def test_certificate_expiry_flags(days: float, warn: bool, expired: bool):
    node = SimpleNamespace(keystore=SimpleNamespace(certificate=lambda: _cert(days)),
                           maintenance=SimpleNamespace(renewals=2))
    info = certificate_info(node)
    assert (info["warn"], info["expired"], info["serial"]) == (warn, expired, "abc")
    assert abs(info["days_left"] - days) < 0.01 and info["subject"] == "CN=main"


@pytest.mark.parametrize(("next_in", "stale", "overdue"), [(timedelta(hours=1), False, False),
                                                           (timedelta(hours=-1), False, True),
                                                           (timedelta(days=-2), True, True)])
def test_revocation_list_freshness(next_in: timedelta, stale: bool, overdue: bool):
    now = datetime.now(UTC)
    crl = SimpleNamespace(number=7, this_update=now - timedelta(hours=1), next_update=now + next_in,
                          usable_until=lambda: now + next_in + timedelta(days=1),
                          revoked_serials=lambda: {1, 2})
    info = revocation_info(SimpleNamespace(crl=crl))
    assert (info["stale"], info["overdue"], info["number"], info["revoked"]) == (stale, overdue, 7, 2)

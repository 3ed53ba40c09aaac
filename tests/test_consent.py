"""Consent: grant, withdraw, expiry, scoping, evidence, per-batch answers, and the batch filter."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from connector.consent import ConsentFilter, ConsentGrant, ConsentStore, SourceSubjects
from connector.consent import filter as consent_filter
from connector.consent import scope as consent_scope
from connector.consent.cli import consent as consent_cli
from connector.consent.lookup import StringIndex
from mesh.clock import iso, utcnow
from mesh.errors import AreameshError, Conflict, InvalidRequest, NotFound
from tests.consent_fixtures import personal_node

P = "282014"          # 姫路市
OTHER = "282103"      # 加古川市
COMPANY = "7000012050002"  # a 法人番号 with a valid check digit
DS = "himeji-residents"


@pytest.fixture
async def store(tmp_path: Path):
    s = await ConsentStore.open(tmp_path)
    yield s
    await s.close()


async def subjects(store: ConsentStore, **kw) -> set[str]:
    args = {"dataset_id": DS, "participant": P, "purpose": "防災", **kw}
    return set(await store.valid_subjects(args.pop("dataset_id"), args.pop("participant"),
                                          args.pop("purpose"), **args))


async def test_grant_list_and_identical_grant_is_idempotent(store: ConsentStore):
    cid = await store.grant("R1", participant=P, purpose="防災", dataset_id=DS)
    assert await store.grant("R1", participant=P, purpose="防災", dataset_id=DS) == cid
    [c] = await store.list(resident="R1")
    assert (c.id, c.participant, c.dataset_id, c.items, c.status()) == (cid, P, DS, None, "active")
    assert await store.list(participant=OTHER) == []
    assert await subjects(store) == {"R1"}
    await store.grant("R2", participant=COMPANY, purpose="研究")
    assert await subjects(store, participant=COMPANY, purpose="研究") == {"R2"}


async def test_withdraw_takes_effect_on_the_next_call(store: ConsentStore, tmp_path: Path):
    ids = [await store.grant(r, participant=P, purpose="防災") for r in ("R1", "R2", "R3")]
    assert await subjects(store) == {"R1", "R2", "R3"}          # cached from here on
    assert await store.withdraw(ids[1], reason="本人の申出") == [ids[1]]
    assert await subjects(store) == {"R1", "R3"}
    # Another process (the CLI) withdrawing is seen by the serving process's cache too.
    other = await ConsentStore.open(tmp_path)
    await other.withdraw(resident="R3", participant=P, reason="窓口")
    await other.close()
    assert await subjects(store) == {"R1"}
    with pytest.raises(Conflict) as exc:
        await store.withdraw(ids[1])
    assert exc.value.code == "consent_already_withdrawn"
    for call, code in [(store.withdraw("nope"), "unknown_consent"),
                       (store.withdraw(ids[0], resident="R2"), "unknown_consent"),
                       (store.withdraw(resident="R2", participant=P), "no_active_consent")]:
        with pytest.raises(NotFound) as nf:
            await call
        assert nf.value.code == code
    with pytest.raises(InvalidRequest) as bad:
        await store.withdraw(resident="R1")
    assert bad.value.code == "withdraw_target_missing"


async def test_expiry_exact_and_through_the_cache(store: ConsentStore, monkeypatch):
    now = utcnow()
    await store.grant("R1", participant=P, purpose="防災", expires_at=now + timedelta(hours=1))
    await store.grant("R2", participant=P, purpose="防災")
    assert await subjects(store, at=now + timedelta(minutes=59)) == {"R1", "R2"}
    assert await subjects(store, at=now + timedelta(hours=2)) == {"R2"}
    assert await subjects(store) == {"R1", "R2"}
    monkeypatch.setattr(consent_scope, "utcnow", lambda: now + timedelta(hours=2))
    assert await subjects(store) == {"R2"}     # the cached scope noticed the expiry
    [c] = await store.list(resident="R1")
    assert c.status((now + timedelta(hours=2)).isoformat()) == "expired"


async def test_scoping_by_service_component_purpose_and_dataset(store: ConsentStore):
    await store.grant("ANY", participant=P, purpose="防災")
    await store.grant("SVC", participant=P, purpose="防災", service_id="mimamori")
    await store.grant("CMP", participant=P, purpose="防災", service_id="mimamori",
                      component_id="map")
    await store.grant("DS1", participant=P, purpose="防災", dataset_id=DS)
    await store.grant("DS2", participant=P, purpose="防災", dataset_id="other-data")
    await store.grant("TOUR", participant=P, purpose="観光")
    base = {"ANY", "DS1"}
    assert await subjects(store) == base
    assert await subjects(store, service="mimamori") == base | {"SVC"}
    assert await subjects(store, service="mimamori", component="map") == base | {"SVC", "CMP"}
    assert await subjects(store, service="mimamori", component="alert") == base | {"SVC"}
    assert await subjects(store, service="bousai") == base
    assert await subjects(store, dataset_id="other-data") == {"ANY", "DS2"}
    assert await subjects(store, purpose="観光") == {"TOUR"}
    assert await subjects(store, participant=OTHER) == set()
    with pytest.raises(InvalidRequest) as exc:
        await subjects(store, component="map")
    assert exc.value.code == "component_without_service"


async def test_items_union_and_covering(store: ConsentStore):
    await store.grant("R1", participant=P, purpose="防災", items=["氏名", "住所"])
    await store.grant("R1", participant=P, purpose="防災", dataset_id=DS, items=["電話番号"])
    await store.grant("R2", participant=P, purpose="防災", items=["氏名"])
    await store.grant("R3", participant=P, purpose="防災")
    scope = await store.scope(DS, P, "防災")
    assert scope.items("R1") == {"氏名", "住所", "電話番号"} and scope.items("R3") is None
    assert await subjects(store, items=["氏名"]) == {"R1", "R2", "R3"}
    assert await subjects(store, items=["氏名", "住所"]) == {"R1", "R3"}
    await store.grant("R2", participant=P, purpose="防災")   # an all-items consent wins
    assert (await store.scope(DS, P, "防災")).items("R2") is None


async def test_superseding_grant_and_history_are_evidence(store: ConsentStore):
    first = await store.grant("R1", participant=P, purpose="防災", items=["氏名"], actor="窓口A")
    second = await store.grant("R1", participant=P, purpose="防災", actor="portal")
    assert first != second
    assert (await store.get(first)).withdraw_reason == f"superseded by {second}"
    await store.withdraw(second, reason="転出", actor="portal")
    third = await store.grant("R1", participant=P, purpose="観光",
                              expires_at=utcnow() + timedelta(hours=1))
    assert await store.sweep_expired(at=iso(utcnow() + timedelta(hours=2))) == 1
    events = await store.history("R1")
    assert [(e.event, e.consent_id) for e in events] == [
        ("granted", first), ("superseded", first), ("granted", second), ("withdrawn", second),
        ("granted", third), ("expired", third)]
    assert events[0].actor == "窓口A" and events[0].detail["items"] == ["氏名"]
    assert events[1].detail == {"by": second} and events[3].detail == {"reason": "転出"}
    assert events[5].effective_at == (await store.get(third)).expires_at
    assert events[5].recorded_at > events[4].recorded_at
    assert await store.sweep_expired(at=iso(utcnow() + timedelta(hours=3))) == 0  # once only
    for sql in ("UPDATE consent_events SET event = 'granted'", "DELETE FROM consent_events",
                "DELETE FROM consents", f"UPDATE consents SET withdrawn_at = NULL WHERE id = '{second}'"):
        with pytest.raises(sqlite3.DatabaseError):
            await store.db.conn.execute(sql)


async def test_unknown_resident_is_refused(store: ConsentStore):
    known = {"R1"}

    async def known_subject(resident: str) -> bool:
        return resident in known

    assert await store.grant("R1", participant=P, purpose="防災", known_subject=known_subject)
    with pytest.raises(NotFound) as exc:
        await store.grant_many([ConsentGrant("R1", P, "研究"), ConsentGrant("R404", P, "研究")],
                               known_subject=known_subject)
    assert exc.value.code == "unknown_resident" and "R404" in exc.value.message
    assert exc.value.message_ja
    assert len(await store.list()) == 1           # all or nothing


@pytest.mark.parametrize("kwargs,code", [
    ({"participant": "282015"}, "invalid_participant_id"),          # wrong check digit
    ({"participant": "28201"}, "invalid_participant_id"),
    ({"participant": "7000012050003"}, "invalid_participant_id"),   # wrong 法人番号 check digit
    ({"participant": "４８２０１４"}, "invalid_participant_id"),     # full-width digits
    ({"resident": ""}, "invalid_resident"),
    ({"resident": "R 1"}, "invalid_resident"),
    ({"purpose": " "}, "invalid_purpose"),
    ({"dataset_id": "Bad/Id"}, "invalid_dataset_id"),
    ({"component_id": "map"}, "component_without_service"),
    ({"items": []}, "invalid_items"),
    ({"items": ["氏名", "氏名"]}, "invalid_items"),
    ({"expires_at": "past"}, "invalid_expiry"),
    ({"participant": 282014}, "invalid_participant_id"),
    ({"service_id": 5, "component_id": "x"}, "invalid_service_id"),
])
async def test_invalid_grants_are_refused(store: ConsentStore, kwargs, code):
    args = {"resident": "R1", "participant": P, "purpose": "防災", **kwargs}
    if args.get("expires_at") == "past":
        args["expires_at"] = utcnow() - timedelta(seconds=1)
    with pytest.raises(InvalidRequest) as exc:
        await store.grant(args.pop("resident"), **args)
    assert exc.value.code == code and exc.value.message_ja
    assert await store.list() == []


async def test_incremental_scope_equals_a_fresh_read(store: ConsentStore):
    rng = random.Random(7)
    store._cache.compact_after = 15   # exercise both the incremental path and the rebuild
    residents = [f"R{i:03d}" for i in range(60)]
    await store.grant_many([ConsentGrant(r, P, "防災", items=("氏名",) if i % 5 == 0 else None)
                            for i, r in enumerate(residents)])
    for _ in range(40):
        r = rng.choice(residents)
        active = await store.list(resident=r, active_only=True)
        if active and rng.random() < 0.6:
            await store.withdraw(active[0].id)
        else:
            await store.grant(r, participant=P, purpose="防災",
                              items=rng.choice([None, ["氏名"], ["氏名", "住所"]]))
        cached = await store.scope(DS, P, "防災")
        fresh = await store.scope(DS, P, "防災", at=utcnow())
        assert cached.subjects == fresh.subjects
        assert {s: cached.items(s) for s in cached.subjects} == \
               {s: fresh.items(s) for s in fresh.subjects}
        rows = batch([*residents, "R999", None])
        assert ConsentFilter("住民ID").apply(rows, cached).batch.to_pylist() == \
               ConsentFilter("住民ID").apply(rows, fresh).batch.to_pylist()


def batch(ids: list[str | None]) -> pa.RecordBatch:
    return pa.record_batch({"住民ID": pa.array(ids, pa.string()),
                            "氏名": pa.array([f"氏名{i}" for i in range(len(ids))], pa.string()),
                            "住所": pa.array([f"住所{i}" for i in range(len(ids))], pa.string()),
                            "年齢": pa.array(range(len(ids)), pa.int64())})


def test_filter_keeps_consented_records_and_counts_subjects():
    out = ConsentFilter("住民ID").apply(batch(["A", "B", "A", None, "C", "B", "A"]),
                                        frozenset({"A", "C", "Z"}))
    assert out.batch.column("住民ID").to_pylist() == ["A", "A", "C", "A"]
    assert out.batch.column("年齢").to_pylist() == [0, 2, 4, 6]
    assert (out.subjects, out.records, out.dropped) == (["A", "C"], [3, 1], 3)


def test_filter_empty_result_projection_and_errors():
    empty = ConsentFilter("住民ID").apply(batch(["A", "B"]), frozenset())
    assert empty.batch.num_rows == 0 and empty.batch.schema == batch([]).schema
    assert (empty.subjects, empty.records, empty.dropped) == ([], [], 2)
    projected = ConsentFilter("住民ID", columns=["住民ID", "年齢"]).apply(
        batch(["A", "B"]), frozenset({"B"}))
    assert projected.batch.to_pylist() == [{"住民ID": "B", "年齢": 1}]
    numeric = pa.record_batch({"id": pa.array([10, 20, 30], pa.int64()), "v": ["x", "y", "z"]})
    assert ConsentFilter("id").apply(numeric, frozenset({"20"})).batch.column("v").to_pylist() \
        == ["y"]
    for f, code in [(ConsentFilter("missing"), "subject_column_missing"),
                    (ConsentFilter("住民ID", columns=["電話"]), "unknown_column")]:
        with pytest.raises(InvalidRequest) as exc:
            f.apply(batch(["A"]), frozenset({"A"}))
        assert exc.value.code == code


def test_large_sets_use_the_sorted_lookup_with_the_same_answer():
    rng = random.Random(3)
    allowed = frozenset(f"R{i:06d}" for i in range(0, 30_000, 3))
    assert len(allowed) > consent_filter.SMALL_SET
    ids = [rng.choice([f"R{rng.randrange(40_000):06d}", "", "ＲＯ", "zz", None]) for _ in range(5000)]
    out = ConsentFilter("住民ID").apply(batch(ids), allowed)
    expected = [i for i in ids if i in allowed]
    assert out.batch.column("住民ID").to_pylist() == expected
    assert sum(out.records) == len(expected) and out.dropped == len(ids) - len(expected)
    assert consent_filter.member(pa.array(["R000000"]), allowed).tolist() == [True]
    assert consent_filter.member(pa.array(["R999999"]), allowed).tolist() == [False]


@pytest.mark.parametrize("size", [1, 50, 6000])
def test_string_index_is_exact(size: int):
    rng = random.Random(size)
    pool = ["", "a", "ア", "ｱ", "東京都姫路市", "x" * 700, "H000000001", "h000000001", None,
            *(f"{rng.random():.{rng.randrange(1, 17)}f}" for _ in range(size))]
    values = [v for v in pool if v is not None and rng.random() < 0.5] or ["only"]
    index = StringIndex(pa.array([*values, None, values[0]]))       # nulls and repeats ignored
    query = [rng.choice(pool) for _ in range(3000)]
    column = pa.array(query).slice(11, 2500)                         # a sliced Arrow array
    assert index.contains(column).to_pylist() == [
        v is not None and v in set(values) for v in query[11:2511]]
    assert index.contains(pa.array([], pa.string())).to_pylist() == []
    trailing = StringIndex(pa.array(["abc", "de", "", None, ""]))   # empty strings last
    assert trailing.contains(pa.array(["de", "abc", "", None, "ab", "d"])).to_pylist() == [
        True, True, True, False, False, False]


async def test_filter_with_a_scope_nulls_items_not_consented(store: ConsentStore):
    await store.grant("A", participant=P, purpose="防災")
    await store.grant("B", participant=P, purpose="防災", items=["氏名"])
    await store.grant("C", participant=P, purpose="防災", items=["住所", "年齢"])
    scope = await store.scope(DS, P, "防災")
    out = ConsentFilter("住民ID").apply(batch(["A", "B", "C", "D"]), scope)
    assert out.batch.to_pylist() == [
        {"住民ID": "A", "氏名": "氏名0", "住所": "住所0", "年齢": 0},
        {"住民ID": "B", "氏名": "氏名1", "住所": None, "年齢": None},
        {"住民ID": "C", "氏名": None, "住所": "住所2", "年齢": 2}]
    await store.withdraw(resident="A", participant=P)
    await store.grant("C", participant=P, purpose="防災", items=["氏名"])   # supersedes C's
    await store.grant("D", participant=P, purpose="防災")
    after = ConsentFilter("住民ID").apply(batch(["A", "B", "C", "D"]),
                                          await store.scope(DS, P, "防災"))
    assert after.batch.to_pylist() == [
        {"住民ID": "B", "氏名": "氏名1", "住所": None, "年齢": None},
        {"住民ID": "C", "氏名": "氏名2", "住所": None, "年齢": None},
        {"住民ID": "D", "氏名": "氏名3", "住所": "住所3", "年齢": 3}]
    nobody = ConsentFilter("住民ID").apply(batch(["A", "B"]), await store.scope(DS, OTHER, "防災"))
    assert nobody.batch.num_rows == 0 and nobody.subjects == []


async def test_scope_and_its_subject_set_can_both_filter(store: ConsentStore, monkeypatch):
    monkeypatch.setattr(consent_filter, "SMALL_SET", 2)       # force the indexed lookups
    await store.grant_many([ConsentGrant(r, P, "防災") for r in ("A", "B", "C")])
    scope = await store.scope(DS, P, "防災")
    assert scope.subjects is scope.base_full                 # one object, two cached lookups
    rows = batch(["A", "D", "C"])
    by_scope = ConsentFilter("住民ID").apply(rows, scope)
    by_set = ConsentFilter("住民ID").apply(rows, await store.valid_subjects(DS, P, "防災"))
    assert by_scope.subjects == by_set.subjects == ["A", "C"]


async def test_source_subjects_reads_again_when_the_source_changes():
    data = {"rows": ["R1", "R2"], "version": 1}
    reads = []

    async def read():
        reads.append(1)
        yield batch(data["rows"])

    async def fingerprint():
        return data["version"]

    known = SourceSubjects(read, "住民ID", fingerprint)
    assert await known("R1") and not await known("R3") and len(reads) == 1
    data.update(rows=["R3"], version=2)
    assert await known("R3") and len(reads) == 2


def test_cli_grant_list_withdraw_history(tmp_path: Path):
    personal_node(tmp_path, "住民ID,氏名\nR1,姫路太郎\nR2,姫路花子\n")
    data_dir = str(tmp_path / "node")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(consent_cli, [*args, "--data-dir", data_dir], catch_exceptions=False)

    ok = run("grant", "--resident", "R1", "--participant", OTHER, "--purpose", "防災",
             "--dataset", DS, "--item", "氏名", "--expires", "30d", "--actor", "窓口")
    assert ok.exit_code == 0, ok.output
    consent_id = ok.output.strip().split()[-1]
    unknown = run("grant", "--resident", "R9", "--participant", OTHER, "--purpose", "防災")
    assert unknown.exit_code == 1 and "unknown_resident" in unknown.output
    assert "Traceback" not in unknown.output
    bad = run("grant", "--resident", "R2", "--participant", "282015", "--purpose", "防災")
    assert bad.exit_code == 2 and "invalid_participant_id" in bad.output and "検査数字" in bad.output
    not_personal = run("grant", "--resident", "R2", "--participant", OTHER, "--purpose", "防災",
                       "--dataset", "himeji-aed")
    assert not_personal.exit_code == 2 and "dataset_not_personal" in not_personal.output
    expiry = run("grant", "--resident", "R2", "--participant", OTHER, "--purpose", "防災",
                 "--expires", "someday")
    assert expiry.exit_code == 2 and "invalid_expiry" in expiry.output
    dated = run("grant", "--resident", "R2", "--participant", OTHER, "--purpose", "観光",
                "--dataset", DS, "--expires", "2099-03-31")
    assert dated.exit_code == 0, dated.output
    [c2] = json.loads(run("list", "--resident", "R2", "--json").output)
    assert c2["expires_at"] == "2099-03-31T15:00:00.000000+00:00"       # end of that day, JST
    listed = json.loads(run("list", "--resident", "R1", "--json").output)
    assert [(c["id"], c["items"], c["status"]) for c in listed] == [(consent_id, ["氏名"], "active")]
    assert "R1" in run("list", "--active").output
    assert run("withdraw", "--id", consent_id, "--reason", "本人の申出").exit_code == 0
    again = run("withdraw", "--id", consent_id)
    assert again.exit_code == 1 and "consent_already_withdrawn" in again.output
    history = json.loads(run("history", "--resident", "R1", "--json").output)
    assert [e["event"] for e in history] == ["granted", "withdrawn"]
    shown = run("history", "--resident", "R1").output.splitlines()
    assert shown[0].split("\t") == ["日時/effective", "出来事/event", "同意/consent", "操作者/actor",
                                     "詳細/detail"]
    assert "本人の申出" in shown[2] and len(shown) == 3
    for command in ("grant", "withdraw", "list", "history"):
        shown = runner.invoke(consent_cli, [command, "--help"])
        assert shown.exit_code == 0 and " / " in shown.output
        assert any("\u3040" <= ch <= "\u9fff" for ch in shown.output)   # Japanese first


async def test_damaged_consent_db_is_a_clear_error(tmp_path: Path):
    (tmp_path / "consent.db").write_bytes(b"not a database" * 200)
    with pytest.raises(AreameshError) as exc:
        await ConsentStore.open(tmp_path)
    assert exc.value.code == "consent_db_unreadable"


@pytest.mark.parametrize("ids,queries", [
    # a prefix and digits in a dense range: the number table
    ([f"H{i:09d}" for i in range(0, 20_000, 2)],
     ["H000000004", "H000000005", "h000000004", "H00000000x", "H0000000004", "G000000004",
      "H000019998", "H000020000", "H999999999", "", None, "H000000004"]),
    # digits only, 18 of them
    ([f"{10**17 + i:018d}" for i in range(0, 5000, 5)],
     [f"{10**17:018d}", f"{10**17 + 1:018d}", f"{10**17 + 4995:018d}", "1" * 18, "１" * 6]),
    # a shared prefix with digits in it, then digits
    ([f"28-{i:05d}" for i in range(300)], ["28-00299", "28-00300", "27-00001", "28-0001"]),
    # sparse numbers: the hash index instead
    ([f"R{i * 7919:012d}" for i in range(3000)], [f"R{7919:012d}", f"R{7918:012d}", "R1"]),
    # mixed widths and prefixes: the hash index
    (["A1", "B22", "H000000001", "東京都-1"], ["A1", "B2", "東京都-1", "東京都-2"]),
])
def test_string_index_paths_are_exact(ids, queries):
    index = StringIndex(pa.array(ids))
    assert (index._dense is not None) == (len(ids) >= 300 and not ids[0].startswith("R"))
    column = pa.array(queries, pa.string())
    expected = [q is not None and q in set(ids) for q in queries]
    assert index.contains(column).to_pylist() == expected
    found = index.find(column)
    assert [index.values[int(p)].as_py() if p >= 0 else None for p in found] == [
        q if e else None for q, e in zip(queries, expected, strict=True)]
    assert index.contains(pa.array(["x" + q if q else "x" for q in queries[:3]])).to_pylist() \
        == [False] * 3


def test_filter_nulls_items_of_sliced_batches_and_counts_by_position():
    ids = [f"H{i:09d}" for i in range(5000)]
    allowed = consent_scope.ConsentScope.build(
        [(r, json.dumps(["氏名"]) if i % 3 == 0 else None) for i, r in enumerate(ids)
         if i % 10], "2026-01-01T00:00:00.000000+00:00")
    whole = batch([*ids, *ids[:10]])
    for part in (whole.slice(7, 3000), whole.slice(0, 5000), whole.slice(4990)):
        out = ConsentFilter("住民ID").apply(part, allowed)
        rows = part.to_pylist()
        kept = [r for r in rows if int(r["住民ID"][1:]) % 10]
        assert [r["住民ID"] for r in out.batch.to_pylist()] == [r["住民ID"] for r in kept]
        assert out.batch.column("年齢").to_pylist() == [
            None if int(r["住民ID"][1:]) % 3 == 0 else r["年齢"] for r in kept]
        assert out.batch.column("氏名").to_pylist() == [r["氏名"] for r in kept]
        counted = {}
        for r in kept:
            counted[r["住民ID"]] = counted.get(r["住民ID"], 0) + 1
        assert dict(zip(out.subjects, out.records, strict=True)) == counted
        assert out.subjects == list(counted)                  # in order of appearance
        assert out.dropped == len(rows) - len(kept)


def test_distinct_keys_without_sorting():
    rng = random.Random(5)
    keys = rng.sample(range(2_000_000), 9_000)
    assert consent_filter._distinct(np.array(keys, np.int64))
    for at in (0, 4_500, 8_999):        # one repeat anywhere is seen, the scratch reused
        assert not consent_filter._distinct(np.array([*keys, keys[at]], np.int64))
        assert consent_filter._distinct(np.array(keys[:at + 1], np.int64))
    assert consent_filter._distinct(np.array([7], np.int64))
    assert not consent_filter._distinct(np.array([-1, 5, -1], np.int64))     # sorted instead
    assert consent_filter._distinct(np.array([1 << 40, 3], np.int64))


def test_filter_counts_a_resident_twice_in_one_batch():
    ids = [f"H{i:09d}" for i in range(6000)]
    allowed = consent_scope.ConsentScope.build([(r, None) for r in ids],
                                               "2026-01-01T00:00:00.000000+00:00")
    out = ConsentFilter("住民ID").apply(batch([*ids[:3000], ids[1234], *ids[3000:]]), allowed)
    counts = dict(zip(out.subjects, out.records, strict=True))
    assert counts[ids[1234]] == 2 and len(counts) == 6000 and sum(out.records) == 6001


async def test_current_scope_sees_another_process_s_withdrawal(store: ConsentStore, tmp_path: Path,
                                                               monkeypatch):
    """The in-thread check (``current_scope``) holds only while nothing changed: a withdrawal
    written through another connection (as the CLI or another process does) or a passed
    expiry sends the caller back to ``scope``."""
    key = {"dataset_id": "ds-1", "participant": "282103", "purpose": "研究"}
    assert store.current_scope(**key) is None                 # nothing cached yet
    for r in ("R1", "R2"):
        await store.grant(r, **key)
    soon = utcnow() + timedelta(hours=1)
    await store.grant("R3", **key, expires_at=soon)
    first = await store.scope(**key)
    assert await asyncio.to_thread(store.current_scope, **key) is first   # from a worker thread
    other = await ConsentStore.open(tmp_path)
    try:
        await other.withdraw(resident="R2", participant="282103")
    finally:
        await other.close()
    assert store.current_scope(**key) is None
    second = await store.scope(**key)
    assert second.subjects == {"R1", "R3"} and store.current_scope(**key) is second
    with pytest.raises(InvalidRequest):
        store.current_scope(**key, component="c-1")            # a component needs its service
    monkeypatch.setattr(consent_scope, "utcnow", lambda: soon + timedelta(seconds=1))
    assert store.current_scope(**key) is None                  # R3's consent has expired

"""``consent import``: a municipality's consent register (CSV) loaded in one command, all rows or
none, every bad row reported by its line, repeats reported, the evidence kept."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.consent import ConsentStore
from connector.consent.cli import consent as consent_cli
from connector.consent.register_import import MAX_REPORTED
from tests.consent_fixtures import DS, personal_node

OTHER = "282103"      # 加古川市
OSAKA = "270008"      # 大阪府


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A connector data dir with one personal dataset (R1…R5) and one open dataset."""
    return personal_node(tmp_path, "住民ID,氏名,住所\n"
                         + "".join(f"R{i},住民{i},姫路市\n" for i in range(1, 6)))


def run(node: Path, *args: str):
    return CliRunner().invoke(consent_cli, [*args, "--data-dir", str(node)],
                              catch_exceptions=False)


def consents(node: Path) -> list[dict]:
    return json.loads(run(node, "list", "--json").output)


def history(node: Path, resident: str) -> list[dict]:
    return json.loads(run(node, "history", "--resident", resident, "--json").output)


def test_register_in_shift_jis_with_defaults_items_and_expiry(node: Path, tmp_path: Path):
    register = tmp_path / "同意台帳.csv"
    register.write_bytes((
        "住民ID,氏名,提供先,項目,有効期限\n"
        f"R1,住民1,{OTHER},氏名;住所,2099-03-31\n"
        f"R2,住民2,{OTHER},,\n"
        "\n"                                        # a blank line, as spreadsheets leave them
        f"R3,住民3,{OSAKA},氏名；住所,365d\n").encode("cp932"))
    done = run(node, "import", str(register), "--purpose", "防災", "--dataset", DS,
               "--actor", "防災課 同意台帳 2026-12", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["encoding"] == "cp932" and report["rows"] == 3
    assert (report["recorded"], report["unchanged"], report["invalid_rows"]) == (3, 0, 0)
    assert report["ignored_columns"] == ["氏名"]
    got = {c["resident"]: c for c in consents(node)}
    assert set(got) == {"R1", "R2", "R3"}
    assert (got["R1"]["participant"], got["R1"]["purpose"], got["R1"]["dataset_id"]) == \
        (OTHER, "防災", DS)
    assert got["R1"]["items"] == ["氏名", "住所"] and got["R3"]["items"] == ["氏名", "住所"]
    assert got["R2"]["items"] is None                             # an empty cell: all items
    assert got["R1"]["expires_at"] == "2099-03-31T15:00:00.000000+00:00"   # end of day, JST
    assert got["R2"]["expires_at"] is None and got["R3"]["expires_at"] > "2027-"
    assert got["R3"]["participant"] == OSAKA
    [event] = history(node, "R1")
    assert event["event"] == "granted" and event["actor"] == "防災課 同意台帳 2026-12"

    again = json.loads(run(node, "import", str(register), "--purpose", "防災", "--dataset", DS,
                           "--actor", "再取込", "--json").output)
    assert (again["recorded"], again["unchanged"]) == (1, 2)     # R3: 365d from now is new
    assert len(history(node, "R1")) == 1                          # identical: left as it was


def test_every_bad_row_is_reported_by_line_and_nothing_is_recorded(node: Path, tmp_path: Path):
    register = tmp_path / "register.csv"
    register.write_text(
        "resident,participant,purpose,dataset,expires\n"
        f"R1,{OTHER},防災,{DS},\n"                  # line 2: good
        "R2,282015,防災,,\n"                        # line 3: bad check digit
        f"R9,{OTHER},防災,{DS},\n"                  # line 4: not a resident in the data
        f"R3,{OTHER},防災,{DS},someday\n"           # line 5: bad expiry
        f"R4,{OTHER},防災\n"                        # line 6: too few cells
        f"R5,{OTHER},防災,himeji-aed,\n"            # line 7: not personal data
        f"R5,{OTHER},,{DS},\n"                      # line 8: no purpose, no --purpose
        f"R1,{OTHER},防災,{DS},2020-01-01\n"        # line 9: expiry in the past
        "'; DROP TABLE consents;--,"
        f"{OTHER},防災,{DS},\n",                    # line 10: hostile resident id
        encoding="utf-8")
    done = run(node, "import", str(register), "--actor", "窓口", "--json")
    assert done.exit_code == 2
    report = json.loads(done.output.split("エラー:")[0])
    found = {(e["line"], e["code"]) for e in report["errors"]}
    assert found == {(3, "invalid_participant_id"), (4, "unknown_resident"), (5, "invalid_expiry"),
                     (6, "register_row_width"), (7, "dataset_not_personal"),
                     (8, "invalid_purpose"), (9, "invalid_expiry"), (10, "invalid_resident")}
    assert report["invalid_rows"] == 8 and report["recorded"] == 0
    assert "register_invalid" in done.output and "何も記録していません" in done.output
    assert consents(node) == []                   # line 2 was good, and is not recorded either

    text = run(node, "import", str(register), "--actor", "窓口")
    assert text.exit_code == 2 and "Traceback" not in text.output
    assert "4行目 / line 4: 住民 'R9' はこのコネクタの個人データにありません" in text.output


def test_repeated_rows_are_reported_and_the_later_one_holds(node: Path, tmp_path: Path):
    register = tmp_path / "register.csv"
    register.write_text("住民ID,提供先,利用目的,データセットID,項目\n"
                        f"R1,{OTHER},防災,{DS},氏名\n"
                        f"R2,{OTHER},防災,{DS},\n"
                        f"R1,{OTHER},防災,{DS},氏名;住所\n", encoding="utf-8")
    done = run(node, "import", str(register), "--actor", "窓口")
    assert done.exit_code == 0, done.output
    assert "4行目は 2行目と同じ同意です（後の行が有効）" in done.output
    [r1] = [c for c in consents(node) if c["resident"] == "R1" and c["status"] == "active"]
    assert r1["items"] == ["氏名", "住所"]
    assert [e["event"] for e in history(node, "R1")] == ["granted", "superseded", "granted"]


def test_dry_run_and_missing_columns(node: Path, tmp_path: Path):
    register = tmp_path / "register.csv"
    register.write_text("住民ID\nR1\nR2\n", encoding="utf-8")
    dry = run(node, "import", str(register), "--participant", OTHER, "--purpose", "観光",
              "--actor", "窓口", "--dry-run")
    assert dry.exit_code == 0 and "記録していません" in dry.output and consents(node) == []
    no_purpose = run(node, "import", str(register), "--participant", OTHER, "--actor", "窓口")
    assert no_purpose.exit_code == 2 and "register_no_purpose" in no_purpose.output
    no_resident = tmp_path / "no-resident.csv"
    no_resident.write_text("氏名\n姫路太郎\n", encoding="utf-8")
    refused = run(node, "import", str(no_resident), "--participant", OTHER, "--purpose", "観光",
                  "--actor", "窓口")
    assert refused.exit_code == 2 and "register_no_resident_column" in refused.output
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert "register_empty" in run(node, "import", str(empty), "--actor", "窓口").output
    assert consents(node) == []
    shown = CliRunner().invoke(consent_cli, ["import", "--help"])
    assert shown.exit_code == 0 and "同意台帳" in shown.output


def test_a_large_register_reports_its_first_problems_and_counts_all(node: Path, tmp_path: Path):
    register = tmp_path / "register.csv"
    register.write_text("住民ID\n" + "".join(f"X{i}\n" for i in range(MAX_REPORTED + 50)),
                        encoding="utf-8")
    done = run(node, "import", str(register), "--participant", OTHER, "--purpose", "防災",
               "--dataset", DS, "--actor", "窓口", "--json")
    report = json.loads(done.output.split("エラー:")[0])
    assert report["invalid_rows"] == MAX_REPORTED + 50 and len(report["errors"]) == MAX_REPORTED
    assert report["errors"][0] == {"line": 2, "code": "unknown_resident",
                                   "message": "resident 'X0' is not in the personal data on this "
                                              "connector",
                                   "message_ja": "住民 'X0' はこのコネクタの個人データにありません"}


def test_imported_consents_reach_the_filter(node: Path, tmp_path: Path):
    """What the import records is what a transfer's consent scope sees."""
    register = tmp_path / "register.csv"
    register.write_text("住民ID,項目\nR1,\nR2,氏名\n", encoding="utf-8")
    assert run(node, "import", str(register), "--participant", OTHER, "--purpose", "防災",
               "--dataset", DS, "--actor", "窓口").exit_code == 0

    async def scope():
        store = await ConsentStore.open(node)
        try:
            return await store.scope(DS, OTHER, "防災")
        finally:
            await store.close()

    got = asyncio.run(scope())
    assert got.subjects == {"R1", "R2"}
    assert got.items("R1") is None and got.items("R2") == {"氏名"}

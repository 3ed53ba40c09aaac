"""Bulk matching at volume (issue 18): twins and people whose sex differs are never auto-linked,
ids that repeat are reported instead of stopping, precision on synthetic data with known truth,
and candidate pairs that grow with the input rather than with its square."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from areamesh.identity_cli import identity
from mesh.errors import InvalidRequest
from registry.identity.bulk_match import MatchResult, MatchSettings, match_tables
from registry.identity.residents import ResidentTable, read_residents, table_from_rows
from registry.identity.synthetic import COLUMNS, SyntheticLinkage, generate_linkage, write_csv

SEED = 23
ADDRESS = "兵庫県神戸市中央区加納町3丁目9番4号"


def table(rows: list[dict[str, str]], source: str) -> ResidentTable:
    return table_from_rows([[r[c] for c in COLUMNS] for r in rows], COLUMNS, source)


def person(pid: str, name: str, kana: str, birth: str, sex: str, address: str = ADDRESS) -> dict[str, str]:
    return {"id": pid, "name": name, "name_kana": kana, "birth_date": birth, "sex": sex, "address": address}


@pytest.fixture(scope="module")
def background() -> SyntheticLinkage:
    """Enough ordinary residents for the EM to learn m and u."""
    return generate_linkage(3000, seed=SEED)


# Twins: same surname, birth date and address. Each case: what A holds, what B holds.
TWINS_A = [
    person("TA1", "田中　健太", "タナカ ケンタ", "2001-04-05", "1"),       # only in A …
    person("TA2", "佐藤　陽菜", "サトウ ヒナ", "1999-07-07", "2"),         # … her brother only in B
    person("TA3", "小林　美咲", "", "1988-02-02", "2"),                   # no ヨミ on this side
    person("TA4", "山本　陽子", "ヤマモト ヨウコ", "1975-10-10", "2"),     # homophone twins, both in A
    person("TA5", "山本　洋子", "ヤマモト ヨウコ", "1975-10-10", "2"),
]
TWINS_B = [
    person("TB1", "田中翔太", "タナカショウタ", "2001/4/5", "男", "神戸市中央区加納町3-9-4"),
    person("TB2", "佐藤陽翔", "サトウハルト", "平成11年7月7日", "1", ADDRESS),
    person("TB3", "小林美香", "コバヤシミカ", "1988-02-02", "F", ADDRESS),
    person("TB4", "山本洋子", "やまもとようこ", "1975-10-10", "2", ADDRESS),  # TA5, exactly
]


@pytest.fixture(scope="module")
def twins(background: SyntheticLinkage) -> MatchResult:
    return match_tables(table(background.left + TWINS_A, "a"), table(background.right + TWINS_B, "b"))


def test_twins_are_not_auto_linked(twins: MatchResult) -> None:
    linked = {(k.left_id, k.right_id) for k in twins.links}
    held = {(k.left_id, k.right_id): k.held for k in twins.review}
    for wrong in (("TA1", "TB1"), ("TA2", "TB2"), ("TA3", "TB3"), ("TA4", "TB4")):
        assert wrong not in linked, wrong
    # each would have scored as a link: they agree on 氏, 生年月日 and 住所
    assert held[("TA1", "TB1")] == "given_name"
    assert held[("TA2", "TB2")] == "sex"
    assert held[("TA3", "TB3")] == "given_name"
    # the twin whose name agrees exactly is still linked; the other stays unlinked
    assert ("TA5", "TB4") in linked
    assert all(k.left_id != "TA4" for k in twins.links + twins.review)


def test_held_pairs_carry_their_probability(twins: MatchResult) -> None:
    settings = MatchSettings()
    held = [k for k in twins.review if k.held]
    assert held and any(k.probability >= settings.link_threshold for k in held)
    assert not any(k.held for k in twins.links)


def test_homophone_twins_seen_in_one_table_hold_a_kanji_difference(background: SyntheticLinkage) -> None:
    """A has twins 陽子 and 洋子 (same ヨミ); B has 陽子 with one kanji wrong: not linked to either."""
    b = [*background.right, person("TB9", "山本葉子", "ヤマモトヨウコ", "1975-10-10", "2")]
    result = match_tables(table(background.left + TWINS_A, "a"), table(b, "b"))
    assert all(k.right_id != "TB9" for k in result.links)
    assert {k.held for k in result.review if k.right_id == "TB9"} == {"twins"}
    # without the twin in A, the same one-kanji difference with the same ヨミ is a typo: linked
    alone = [r for r in background.left + TWINS_A if r["id"] != "TA5"]
    result = match_tables(table(alone, "a"), table(b, "b"))
    assert ("TA4", "TB9") in {(k.left_id, k.right_id) for k in result.links}


# --- repeated ids -----------------------------------------------------------------------------------

def test_repeated_ids_are_listed_not_fatal() -> None:
    rows = [["1", "山田太郎", "1980-01-01", "梅田"], ["2", "山田花子", "1981-01-01", "梅田"],
            ["1", "山田太郎", "1980/1/1", "梅田"], ["1", "山田次郎", "1982-01-01", "梅田"]]
    t = table_from_rows(rows, ["id", "name", "birth_date", "address"], "dup.csv")
    assert t.ids == ["1", "2", "1", "1"]
    assert [(r.id, r.line, r.first_line, r.same) for r in t.repeats] == [
        ("1", 4, 2, True), ("1", 5, 2, False)]
    with pytest.raises(InvalidRequest, match="empty id"):
        table_from_rows([[" ", "山田太郎", "1980-01-01", "梅田"]], ["id", "name", "birth_date", "address"])


def test_rows_of_one_id_are_versions_of_one_record(background: SyntheticLinkage) -> None:
    """A exports a mover twice (old and new address) under one id; B has the person twice too
    (a duplicate under two ids): the id is linked once, through its better version."""
    old = person("RA1", "五十嵐　龍之介", "イガラシ リュウノスケ", "1962-03-03", "1", "大阪府豊中市本町3-3-3")
    new = dict(old, address="兵庫県西宮市北口町2-2-2")
    b_new = person("RB1", "五十嵐龍之介", "イガラシリュウノスケ", "1962-03-03", "1",
                   "西宮市北口町2丁目2番2号")
    b_dup = dict(b_new, id="RB2")
    result = match_tables(table([*background.left, old, new, old], "a"),
                          table([*background.right, b_new, b_dup], "b"))
    mine = [k for k in result.links + result.review if k.left_id == "RA1"]
    assert len(mine) == 1 and mine[0] in result.links and mine[0].right_id in {"RB1", "RB2"}
    assert result.n_left == len(background.left) + 1 and result.rows_left == len(background.left) + 3
    assert [(r.id, r.same) for r in result.repeats_left] == [("RA1", False), ("RA1", True)]
    assert not result.repeats_right


def test_cli_reports_repeated_ids(tmp_path: Path) -> None:
    small = generate_linkage(300, seed=SEED)
    left = [*small.left, dict(small.left[0]), dict(small.left[1], address="東京都千代田区麹町1-1-1")]
    write_csv(left, tmp_path / "a.csv")
    write_csv(small.right, tmp_path / "b.csv")
    out = tmp_path / "links.csv"
    outcome = CliRunner().invoke(identity, ["match", "--left", str(tmp_path / "a.csv"), "--right",
                                            str(tmp_path / "b.csv"), "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert "重複ID / repeated ids: left 2 / right 0" in outcome.output
    with open(tmp_path / "links.repeated_ids.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["id"], r["first_line"], r["same"]) for r in rows] == [
        ("302", small.left[0]["id"], "2", "1"), ("303", small.left[1]["id"], "3", "0")]
    with open(out, encoding="utf-8") as f:
        linked = [r["left_id"] for r in csv.DictReader(f)]
    assert len(linked) == len(set(linked))  # each id once, however many rows it has
    outcome = CliRunner().invoke(identity, ["match", "--left", str(tmp_path / "a.csv"), "--right",
                                            str(tmp_path / "b.csv"), "--out", str(out), "--json"])
    assert '"repeated_ids_left": 2' in outcome.output and "repeated_ids.csv" in outcome.output
    with open(tmp_path / "links.review.csv", encoding="utf-8") as f:
        assert next(csv.reader(f))[-1] == "held"


# --- precision and scale ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticLinkage, MatchResult]:
    data = generate_linkage(20_000, seed=SEED)
    return data, match_tables(table(data.left, "a"), table(data.right, "b"))


def test_precision_on_synthetic_truth(medium: tuple[SyntheticLinkage, MatchResult]) -> None:
    data, result = medium
    found = {(k.left_id, k.right_id) for k in result.links}
    tp = len(found & data.true_pairs)
    # measured on this seed: precision 1.0, recall 0.99; the issue asks precision ≥ 0.999
    assert tp / len(found) >= 0.999, (tp, len(found))
    assert tp / len(data.true_pairs) >= 0.97


def test_candidate_pairs_grow_linearly(medium: tuple[SyntheticLinkage, MatchResult]) -> None:
    """Twice the residents, about twice the candidate pairs (2.6× and more when 生年月日 or a
    common name alone was a blocking key); every pass's pairs stay near one per row."""
    data, big = medium
    half = generate_linkage(10_000, seed=SEED)
    small = match_tables(table(half.left, "a"), table(half.right, "b"))
    assert big.candidate_pairs / small.candidate_pairs <= 2.15, (small.candidate_pairs, big.candidate_pairs)
    assert big.candidate_pairs <= 1.5 * len(data.left)
    assert all(p["pairs"] <= len(data.left) for p in big.blocking.values())


def test_oversized_keys_are_skipped_and_counted(background: SyntheticLinkage) -> None:
    """A placeholder birth date and address shared by many records pairs nobody through them."""
    filler = [person(f"F{i}", "山田　太郎", "ヤマダ タロウ", "1900-01-01", "1") for i in range(60)]
    result = match_tables(table(background.left + filler, "a"), table(background.right + filler, "b"),
                          MatchSettings(max_block=50))
    assert all(stats["skipped_keys"] >= 1 for stats in result.blocking.values())
    assert not any(k.left_id.startswith("F") for k in result.links)


def test_read_residents_keeps_repeats(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("id,name,birth_date,address\n7,山田太郎,1980-01-01,梅田\n7,山田太郎,1980-01-01,梅田\n",
                    encoding="utf-8")
    t = read_residents(path)
    assert len(t) == 2 and [(r.line, r.first_line, r.same) for r in t.repeats] == [(3, 2, True)]

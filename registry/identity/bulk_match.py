"""Bulk linkage of two platforms' resident tables on the 基本4情報 (Fellegi–Sunter).

1. Read each CSV (:mod:`registry.identity.residents`): every field normalised with
   :mod:`registry.identity.normalise`.
2. Blocking: candidate pairs are those that agree on at least one key — 生年月日; ヨミ + 生年;
   氏名 + 生年; 氏名 + ヨミ; 住所 + 氏名の1文字目 — each a sort/search join in numpy; keys that
   would pair more than ``max_block`` records of the other table are skipped.
3. Comparison levels (unknown / exact / close / … / different): 氏名 and ヨミ together as one
   comparison (Jaro–Winkler from rapidfuzz for near misses), 生年月日 (one of year, month, day
   wrong, or month and day swapped), 性別, 住所 (same, same 町丁目 or close, same 町字).
4. Fellegi–Sunter (:mod:`registry.identity.fellegi_sunter`): u from random pairs; m by EM in two
   sessions as Splink trains (pairs agreeing on 生年月日 give m of the other comparisons, pairs
   agreeing on 氏名・ヨミ give m of 生年月日); the prior over all left × right pairs by EM with m
   and u fixed. Exact agreement on 氏名, ヨミ and 住所 is adjusted by how common the value is
   (田中太郎 agreeing is weaker evidence than 五十嵐龍之介).
5. One-to-one: pairs in descending weight, each record used at most once. Probability ≥
   ``link_threshold`` → link; ≥ ``review_threshold`` → review file; below → no link.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rapidfuzz.distance import JaroWinkler
from rapidfuzz.process import cpdist

from mesh.errors import InvalidRequest
from registry.identity.fellegi_sunter import fit_em, initial_m, level_probs, tf_adjustment, weights_per_level
from registry.identity.normalise import split_prefecture, strip_gun
from registry.identity.residents import FIELDS, ResidentTable, read_residents, table_from_rows

__all__ = ["COMPARISONS", "FIELDS", "Link", "MatchResult", "MatchSettings", "ResidentTable", "match_files",
           "match_tables", "read_residents", "table_from_rows", "write_links"]

# Fellegi–Sunter comparisons: 氏名 and ヨミ are one comparison, as agreeing on one nearly always
# means agreeing on the other (counting both would double the evidence of a shared name).
COMPARISONS = ("name", "birth_date", "sex", "address")
_KANA_FOLD = str.maketrans("ァィゥェォッャュョヮヵヶヂヅヲヴ", "アイウエオツヤユヨワカケジズオブ", "ー")
_TOWN = re.compile(r"^([^0-9]*)(?:([0-9]+)(.*))?$")


@dataclass(frozen=True)
class MatchSettings:
    """Thresholds are match probabilities; ``max_block`` caps a blocking key's partner count."""

    link_threshold: float = 0.9
    review_threshold: float = 0.3
    max_block: int = 400
    em_iterations: int = 30
    random_pairs: int = 300_000
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.review_threshold <= self.link_threshold <= 1.0:
            raise InvalidRequest(
                "need 0 < review_threshold <= link_threshold <= 1",
                message_ja="しきい値は 0 < 確認しきい値 ≤ リンクしきい値 ≤ 1 で指定してください")


@dataclass(frozen=True)
class Link:
    """A scored pair; ``field_weights`` are the log2 Bayes factors in ``COMPARISONS`` order."""

    left_id: str
    right_id: str
    probability: float
    match_weight: float
    field_weights: tuple[float, ...]


@dataclass
class MatchResult:
    """Links and review pairs (each record at most once across both), the fitted model, timings."""

    links: list[Link]
    review: list[Link]
    n_left: int
    n_right: int
    candidate_pairs: int
    match_rate: float
    m: dict[str, list[float]] = field(default_factory=dict)
    u: dict[str, list[float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def unmatched_left(self) -> int:
        return self.n_left - len(self.links)

    @property
    def unmatched_right(self) -> int:
        return self.n_right - len(self.links)


# --- blocking and comparison --------------------------------------------------------------------

@dataclass
class TableFeatures:
    """Per-row strings and numbers of one table that the comparisons need."""

    name: np.ndarray
    kana: np.ndarray
    address_key: np.ndarray
    pref: list[str]
    town: list[str]
    block: list[str]
    ymd: np.ndarray  # (n, 3) int32, 0 where unknown
    sex: np.ndarray  # int8 ISO 5218


def table_features(t: ResidentTable) -> TableFeatures:
    """What blocking and comparison use: ヨミ with small kana, ヂ/ヅ/ヲ/ヴ and ー folded; the address
    without 都道府県 and 郡, its 町字 (text before the first number) and 町丁目 (with it)."""
    kana = [k.translate(_KANA_FOLD) for k in t.kana]
    prefs, keys, towns, blocks = [], [], [], []
    for a in t.address:
        pref, rest = split_prefecture(a)
        rest = strip_gun(rest)
        m = _TOWN.match(rest)
        town, first = (m.group(1), m.group(2) or "") if m else (rest, "")
        prefs.append(pref)
        keys.append(rest)
        towns.append(town)
        blocks.append(f"{town}{first}" if first else "")
    ymd = np.zeros((len(t), 3), dtype=np.int32)
    for i, b in enumerate(t.birth):
        if b:
            ymd[i] = (int(b[:4]), int(b[5:7]), int(b[8:10]))
    return TableFeatures(np.array(t.name, dtype=object), np.array(kana, dtype=object),
                         np.array(keys, dtype=object), prefs, towns, blocks, ymd,
                         np.array([int(s) for s in t.sex], dtype=np.int8))


def _codes(left: Sequence[str], right: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of string keys shared across both sides; "" (unknown) is -1."""
    table: dict[str, int] = {}
    lc = np.fromiter((table.setdefault(k, len(table)) if k else -1 for k in left), np.int64, len(left))
    rc = np.fromiter((table.get(k, -1) if k else -1 for k in right), np.int64, len(right))
    return lc, rc


def _join(lc: np.ndarray, rc: np.ndarray, max_block: int) -> tuple[np.ndarray, np.ndarray]:
    """All (left, right) index pairs with equal non-negative codes, skipping oversized keys."""
    order = np.argsort(rc, kind="stable")
    rs = rc[order]
    lo = np.searchsorted(rs, lc, "left")
    counts = np.searchsorted(rs, lc, "right") - lo
    counts[(lc < 0) | (counts > max_block)] = 0
    li = np.repeat(np.arange(len(lc)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return li, order[np.repeat(lo, counts) + offsets]


def _blocking_keys(t: ResidentTable, f: TableFeatures) -> list[list[str]]:
    years = [b[:4] for b in t.birth]
    return [
        t.birth,
        [k + y if k and y else "" for k, y in zip(f.kana, years, strict=True)],
        [n + y if n and y else "" for n, y in zip(t.name, years, strict=True)],
        [n + "|" + k if n and k else "" for n, k in zip(t.name, f.kana, strict=True)],
        [a + "|" + n[:1] if a and n else "" for a, n in zip(f.address_key, t.name, strict=True)],
    ]


def candidate_pairs(left: ResidentTable, right: ResidentTable, fl: TableFeatures, fr: TableFeatures,
                    max_block: int) -> tuple[np.ndarray, np.ndarray]:
    """The union of the blocking passes' pairs as (left index, right index) arrays."""
    keys = []
    for kl, kr in zip(_blocking_keys(left, fl), _blocking_keys(right, fr), strict=True):
        li, ri = _join(*_codes(kl, kr), max_block)
        keys.append(li * len(right) + ri)
    pair_keys = np.unique(np.concatenate(keys))
    return pair_keys // len(right), pair_keys % len(right)


def _factorize(left: Sequence[str], right: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes over both sides ("" → -1) and each code's share of the known values."""
    table: dict[str, int] = {}
    lc = np.fromiter((table.setdefault(k, len(table)) if k else -1 for k in left), np.int64, len(left))
    rc = np.fromiter((table.setdefault(k, len(table)) if k else -1 for k in right), np.int64, len(right))
    counts = np.bincount(np.concatenate([lc[lc >= 0], rc[rc >= 0]]), minlength=len(table)).astype(float)
    return lc, rc, counts / max(counts.sum(), 1.0)


def _string_levels(lcode: np.ndarray, rcode: np.ndarray, lstr: np.ndarray, rstr: np.ndarray,
                   thresholds: Sequence[float], workers: int) -> np.ndarray:
    """0 unknown, 1 exact, 2.. Jaro–Winkler ≥ each threshold in turn, last: below them all."""
    levels = np.full(len(lcode), len(thresholds) + 2, dtype=np.int8)
    known = (lcode >= 0) & (rcode >= 0)
    exact = known & (lcode == rcode)
    todo = np.nonzero(known & ~exact)[0]
    if len(todo):
        sim = cpdist(lstr[todo], rstr[todo], scorer=JaroWinkler.normalized_similarity, workers=workers,
                     dtype=np.float32)
        sub = np.full(len(todo), len(thresholds) + 2, dtype=np.int8)
        for k in range(len(thresholds) - 1, -1, -1):
            sub[sim >= thresholds[k]] = k + 2
        levels[todo] = sub
    levels[exact] = 1
    levels[~known] = 0
    return levels


@dataclass
class _Coded:
    """Per-table integer codes of the compared values, and value frequencies for the TF weights."""

    left: dict[str, np.ndarray]
    right: dict[str, np.ndarray]
    tf: dict[str, np.ndarray]


def _code_tables(left: ResidentTable, right: ResidentTable, fl: TableFeatures, fr: TableFeatures) -> _Coded:
    cl, cr, tf = {}, {}, {}
    for key, lv, rv in (("name", left.name, right.name), ("kana", list(fl.kana), list(fr.kana)),
                        ("address", list(fl.address_key), list(fr.address_key)),
                        ("pref", fl.pref, fr.pref), ("town", fl.town, fr.town),
                        ("block", fl.block, fr.block)):
        cl[key], cr[key], tf[key] = _factorize(lv, rv)
    return _Coded(cl, cr, tf)


def comparison_levels(li: np.ndarray, ri: np.ndarray, fl: TableFeatures, fr: TableFeatures, coded: _Coded,
                      workers: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """One int8 level array per comparison in ``COMPARISONS`` order (0 = unknown on either side),
    and whether 氏名 and ヨミ agree exactly (for the term-frequency weights)."""
    cl, cr = coded.left, coded.right
    nl = _string_levels(cl["name"][li], cr["name"][ri], fl.name[li], fr.name[ri], (0.85, 0.7), workers)
    kl = _string_levels(cl["kana"][li], cr["kana"][ri], fl.kana[li], fr.kana[ri], (0.9, 0.75), workers)
    # 氏名・ヨミ: 1 both same, 2 one same and the other unknown, 3 one same, 4 either close (JW ≥
    # 0.85 氏名, 0.9 ヨミ), 5 either loosely close, 6 other; 0 when both are unknown on a side
    name = np.full(len(li), 6, dtype=np.int8)
    name[(nl == 3) | (kl == 3)] = 5
    name[(nl == 2) | (kl == 2)] = 4
    name[(nl == 1) | (kl == 1)] = 3
    name[((nl == 1) & (kl == 0)) | ((kl == 1) & (nl == 0))] = 2
    name[(nl == 1) & (kl == 1)] = 1
    name[(nl == 0) & (kl == 0)] = 0
    # 住所: 1 same (a missing 都道府県 is no difference), 2 same 町丁目 or JW ≥ 0.9, 3 same 町字, 4 other
    address = _string_levels(cl["address"][li], cr["address"][ri], fl.address_key[li], fr.address_key[ri],
                             (0.9,), workers)
    pl, pr = cl["pref"][li], cr["pref"][ri]
    address[(address == 1) & (pl >= 0) & (pr >= 0) & (pl != pr)] = 4
    bl, br = cl["block"][li], cr["block"][ri]
    address[(address == 3) & (bl >= 0) & (bl == br)] = 2
    tl, tr = cl["town"][li], cr["town"][ri]
    address[(address == 3) & ((tl < 0) | (tl != tr))] = 4
    # 生年月日: 1 same, 2 one of year/month/day differs or month and day swapped, 3 other
    a, b = fl.ymd[li], fr.ymd[ri]
    same = (a == b).sum(axis=1)
    swapped = (a[:, 0] == b[:, 0]) & (a[:, 1] == b[:, 2]) & (a[:, 2] == b[:, 1])
    birth = np.where(same == 3, 1, np.where((same == 2) | swapped, 2, 3)).astype(np.int8)
    birth[(a[:, 0] == 0) | (b[:, 0] == 0)] = 0
    sl, sr = fl.sex[li], fr.sex[ri]
    sex = np.where(sl == sr, 1, 2).astype(np.int8)
    sex[(sl == 0) | (sr == 0)] = 0
    return [name, birth, sex, address], nl == 1, kl == 1


def estimate_parameters(levels: list[np.ndarray], random_levels: list[np.ndarray], n_left: int,
                        n_right: int, iterations: int) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """u from random pairs; m by EM in two sessions (pairs agreeing on 生年月日 → m of the other
    comparisons; pairs agreeing on 氏名・ヨミ → m of 生年月日); then the prior match rate over all
    left × right pairs, by EM over the candidates with m and u fixed."""
    n_levels = [int(max(lev.max(), rlev.max(), 1)) + 1
                for lev, rlev in zip(levels, random_levels, strict=True)]
    u = [level_probs(rlev, None, k) for rlev, k in zip(random_levels, n_levels, strict=True)]
    m = [initial_m(k) for k in n_levels]
    birth, name = COMPARISONS.index("birth_date"), COMPARISONS.index("name")
    for session, blocked, estimated in ((levels[birth] == 1, "birth_date", set(COMPARISONS) - {"birth_date"}),
                                        (levels[name] == 1, "name", {"birth_date"})):
        if session.sum() < 10:
            continue
        active = [c != blocked for c in COMPARISONS]
        rate = min(min(n_left, n_right) / session.sum(), 0.5)
        fitted, _ = fit_em([lev[session] for lev in levels], u, m, rate, active, iterations)
        m = [fm if c in estimated else mf for fm, mf, c in zip(fitted, m, COMPARISONS, strict=True)]
    population = n_left * n_right
    _, lam = fit_em(levels, u, m, min(n_left, n_right) / population, [True] * len(COMPARISONS),
                    iterations, population, update_m=False)
    return m, u, lam


def match_tables(left: ResidentTable, right: ResidentTable, settings: MatchSettings | None = None,
                 ) -> MatchResult:
    """Link ``left`` and ``right`` one-to-one (see the module docstring)."""
    settings = settings or MatchSettings()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    fl, fr = table_features(left), table_features(right)
    coded = _code_tables(left, right, fl, fr)
    li, ri = candidate_pairs(left, right, fl, fr, settings.max_block)
    timings["blocking"] = time.perf_counter() - t0
    if len(left) == 0 or len(right) == 0 or len(li) == 0:
        return MatchResult([], [], len(left), len(right), 0, 0.0, seconds=timings)
    t1 = time.perf_counter()
    levels, name_exact, kana_exact = comparison_levels(li, ri, fl, fr, coded, settings.workers)
    rng = np.random.default_rng(settings.seed)
    rl = rng.integers(0, len(left), settings.random_pairs)
    rr = rng.integers(0, len(right), settings.random_pairs)
    random_levels, _, _ = comparison_levels(rl, rr, fl, fr, coded, settings.workers)
    # u describes non-matches: drop the random pairs that agree on 氏名・ヨミ and 生年月日 (in small
    # tables a fair share of random pairs are the same person)
    keep = ~((random_levels[0] == 1) & (random_levels[1] == 1))
    random_levels = [lev[keep] for lev in random_levels]
    timings["comparison"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    m, u, lam = estimate_parameters(levels, random_levels, len(left), len(right), settings.em_iterations)
    field_w = [wf[lev] for wf, lev in zip(weights_per_level(m, u), levels, strict=True)]
    name_i, address_i = COMPARISONS.index("name"), COMPARISONS.index("address")
    exact_name = levels[name_i] <= 2
    field_w[name_i] = (field_w[name_i]
                       + tf_adjustment(coded.left["name"][li], coded.tf["name"], exact_name & name_exact)
                       + tf_adjustment(coded.left["kana"][li], coded.tf["kana"],
                                        exact_name & kana_exact & ~name_exact))
    field_w[address_i] = field_w[address_i] + tf_adjustment(coded.left["address"][li], coded.tf["address"],
                                                             levels[address_i] == 1)
    weight = np.log2(lam / (1 - lam)) + np.sum(field_w, axis=0)
    prob = 1.0 / (1.0 + np.exp2(-weight))
    timings["scoring"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    links, review = _assign(left, right, li, ri, weight, prob, np.stack(field_w, axis=1), settings)
    timings["assignment"] = time.perf_counter() - t3
    return MatchResult(links, review, len(left), len(right), len(li), lam,
                       m={c: mf.round(5).tolist() for c, mf in zip(COMPARISONS, m, strict=True)},
                       u={c: uf.round(5).tolist() for c, uf in zip(COMPARISONS, u, strict=True)},
                       seconds=timings)


def _assign(left: ResidentTable, right: ResidentTable, li: np.ndarray, ri: np.ndarray, weight: np.ndarray,
            prob: np.ndarray, field_w: np.ndarray, settings: MatchSettings) -> tuple[list[Link], list[Link]]:
    """Greedy one-to-one: best pairs first, each record used once; split at the link threshold."""
    idx = np.nonzero(prob >= settings.review_threshold)[0]
    idx = idx[np.lexsort((ri[idx], li[idx], -weight[idx]))]
    used_left = np.zeros(len(left), dtype=bool)
    used_right = np.zeros(len(right), dtype=bool)
    links: list[Link] = []
    review: list[Link] = []
    for k in idx.tolist():
        a, b = int(li[k]), int(ri[k])
        if used_left[a] or used_right[b]:
            continue
        used_left[a] = used_right[b] = True
        link = Link(left.ids[a], right.ids[b], float(prob[k]), float(weight[k]),
                    tuple(float(x) for x in field_w[k]))
        (links if prob[k] >= settings.link_threshold else review).append(link)
    return links, review


# --- files --------------------------------------------------------------------------------------

def write_links(path: str | Path, links: Sequence[Link]) -> None:
    """CSV: left_id, right_id, score (match probability), match_weight, then w_<field> per field."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["left_id", "right_id", "score", "match_weight", *(f"w_{x}" for x in COMPARISONS)])
        for k in links:
            writer.writerow([k.left_id, k.right_id, f"{k.probability:.6f}", f"{k.match_weight:.3f}",
                             *(f"{w:.3f}" for w in k.field_weights)])


def default_review_path(out: str | Path) -> Path:
    """``links.csv`` → ``links.review.csv`` beside it."""
    out = Path(out)
    return out.with_name(out.stem + ".review" + (out.suffix or ".csv"))


def match_files(left_path: str | Path, right_path: str | Path, out: str | Path,
                review_path: str | Path | None = None, settings: MatchSettings | None = None) -> MatchResult:
    """Read both CSVs, link them, write the links and the review band; returns the result."""
    t0 = time.perf_counter()
    left, right = read_residents(left_path), read_residents(right_path)
    read_seconds = time.perf_counter() - t0
    result = match_tables(left, right, settings)
    result.seconds = {"read": read_seconds, **result.seconds}
    write_links(out, result.links)
    write_links(review_path or default_review_path(out), result.review)
    result.seconds["total"] = time.perf_counter() - t0
    return result

"""Bulk linkage of two platforms' resident tables on the 基本4情報 (Fellegi–Sunter).

1. Read each CSV (:mod:`registry.identity.residents`): every field normalised with
   :mod:`registry.identity.normalise`.
2. Blocking: candidate pairs are those that agree exactly on two of the three kinds of evidence
   — 氏名 + 生年月日, ヨミ + 生年月日, 生年月日 + 住所, 氏名 + 住所, ヨミ + 住所 — each a sort/search
   join of integer codes in numpy, the passes' pairs deduplicated. Every key joins records that
   are rare together, so a key's block does not grow with the tables the way 生年月日 alone or a
   common 氏名 does and the candidates grow about linearly with the input; a key that would pair
   a record with more than ``max_block`` records of the other table (a placeholder birth date, a
   large institution's address) is skipped and counted. Pairs that agree on only one of the three
   are left out: at a million a side (a prior of about 2⁻²⁰) one exact agreement and near misses
   do not reach the link threshold; in small tables a few such pairs would (2k a side: recall
   0.989 against 0.991 with the old single-field keys).
3. Comparison levels (unknown / exact / close / … / different): 氏名 and ヨミ together as one
   comparison (Jaro–Winkler from rapidfuzz for near misses), 生年月日 (one of year, month, day
   wrong, or month and day swapped), 性別, 住所 (same, same 町丁目 or close, same 町字).
4. Fellegi–Sunter (:mod:`registry.identity.fellegi_sunter`): u from random pairs; m by EM in two
   sessions as Splink trains (pairs agreeing on 生年月日 give m of the other comparisons, pairs
   agreeing on 氏名・ヨミ give m of 生年月日); the prior over all left × right pairs by EM with m
   and u fixed. Exact agreement on 氏名, ヨミ and 住所 is adjusted by how common the value is
   (田中太郎 agreeing is weaker evidence than 五十嵐龍之介).
5. One-to-one: pairs in descending weight, each id used at most once (the rows of an id that
   repeats are versions of one record; the best-scoring one counts). Probability ≥
   ``link_threshold`` → link; ≥ ``review_threshold`` → review file; below → no link.
6. Held for review whatever the probability (Fellegi–Sunter multiplies evidence as if the
   fields were independent; twins break that, agreeing on 氏, 生年月日 and 住所 together): a pair
   whose 性別 differ (both known), whose given names differ (neither 氏名 nor ヨミ agrees and the
   names start alike: a different person of the same family rather than a new surname), or whose
   names differ at all while either table holds two people of one 生年月日 and 住所 under
   different names (twins seen).
"""

from __future__ import annotations

import csv
import gc
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import JaroWinkler
from rapidfuzz.process import cpdist

from mesh.errors import InvalidRequest
from registry.identity.fellegi_sunter import fit_em, initial_m, level_probs, tf_adjustment, weights_per_level
from registry.identity.normalise import split_prefecture, strip_gun
from registry.identity.residents import FIELDS, RepeatedId, ResidentTable, read_residents, table_from_rows

__all__ = ["BLOCKING_PASSES", "COMPARISONS", "FIELDS", "HOLD_REASONS", "Link", "MatchResult", "MatchSettings",
           "RepeatedId", "ResidentTable", "default_repeats_path", "default_review_path", "match_files",
           "match_tables", "read_residents", "table_from_rows", "write_links", "write_repeats"]

# Fellegi–Sunter comparisons: 氏名 and ヨミ are one comparison, as agreeing on one nearly always
# means agreeing on the other (counting both would double the evidence of a shared name).
COMPARISONS = ("name", "birth_date", "sex", "address")
# Blocking passes: pairs of coded values that must both agree exactly (see the module docstring).
BLOCKING_PASSES = (("name", "birth"), ("kana", "birth"), ("birth", "address"), ("name", "address"),
                   ("kana", "address"))
# Why a pair above the link threshold went to review instead (Link.held), and its Japanese.
HOLD_REASONS = {"sex": "性別が異なる", "given_name": "名が異なる（同じ氏の別人の可能性）",
                "twins": "同じ生年月日・住所に別の氏名の人がいる（双子の可能性）"}
_KANA_FOLD = str.maketrans("ァィゥェォッャュョヮヵヶヂヅヲヴ", "アイウエオツヤユヨワカケジズオブ", "ー")
_TOWN = re.compile(r"^([^0-9]*)(?:([0-9]+)(.*))?$")


@dataclass(frozen=True)
class MatchSettings:
    """Thresholds are match probabilities; ``max_block`` caps a blocking key's partner count."""

    link_threshold: float = 0.9
    review_threshold: float = 0.3
    max_block: int = 50
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
    """A scored pair; ``field_weights`` are the log2 Bayes factors in ``COMPARISONS`` order;
    ``held`` is the ``HOLD_REASONS`` key of a pair kept from linking whatever its probability."""

    left_id: str
    right_id: str
    probability: float
    match_weight: float
    field_weights: tuple[float, ...]
    held: str = ""


@dataclass
class MatchResult:
    """Links and review pairs (each id at most once across both), the fitted model, timings.

    ``n_left``/``n_right`` count distinct ids; ``rows_left``/``rows_right`` rows (more when ids
    repeat, listed in ``repeats_left``/``repeats_right``). ``blocking`` has, per pass, the pairs
    it found and the keys it skipped as oversized."""

    links: list[Link]
    review: list[Link]
    n_left: int
    n_right: int
    candidate_pairs: int
    match_rate: float
    m: dict[str, list[float]] = field(default_factory=dict)
    u: dict[str, list[float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    rows_left: int = 0
    rows_right: int = 0
    repeats_left: list[RepeatedId] = field(default_factory=list)
    repeats_right: list[RepeatedId] = field(default_factory=list)
    blocking: dict[str, dict[str, int]] = field(default_factory=dict)

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
    folded: dict[str, str] = {}
    kana = [folded.get(k) or folded.setdefault(k, k.translate(_KANA_FOLD)) for k in t.kana]
    parts: dict[str, tuple[str, str, str, str]] = {}  # each distinct address split once
    for a in t.address:
        if a not in parts:
            pref, rest = split_prefecture(a)
            rest = strip_gun(rest)
            m = _TOWN.match(rest)
            town, first = (m.group(1), m.group(2) or "") if m else (rest, "")
            parts[a] = (pref, rest, town, f"{town}{first}" if first else "")
    split = [parts[a] for a in t.address]
    prefs, keys, towns, blocks = ([p[i] for p in split] for i in range(4))
    codes, distinct = _encode(t.birth)  # each distinct date parsed once
    dates = np.array([(int(b[:4]), int(b[5:7]), int(b[8:10])) if b else (0, 0, 0)
                      for b in distinct.to_pylist()] + [(0, 0, 0)], dtype=np.int32).reshape(-1, 3)
    ymd = dates[codes]  # code -1 (unknown) picks the last row, zeros
    return TableFeatures(np.array(t.name, dtype=object), np.array(kana, dtype=object),
                         np.array(keys, dtype=object), prefs, towns, blocks, ymd,
                         np.array([int(s) for s in t.sex], dtype=np.int8))


def _join(lc: np.ndarray, rc: np.ndarray, max_block: int) -> tuple[np.ndarray, np.ndarray, int]:
    """All (left, right) index pairs with equal non-negative codes, and how many distinct keys were
    skipped because they pair a left record with more than ``max_block`` right records."""
    order = np.argsort(rc, kind="stable")
    rs = rc[order]
    lo = np.searchsorted(rs, lc, "left")
    counts = np.searchsorted(rs, lc, "right") - lo
    counts[lc < 0] = 0
    over = counts > max_block
    skipped = len(np.unique(lc[over])) if over.any() else 0
    counts[over] = 0
    li = np.repeat(np.arange(len(lc)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return li, order[np.repeat(lo, counts) + offsets], skipped


def _combine(a: np.ndarray, b: np.ndarray, base: int) -> np.ndarray:
    """One code for a pair of codes (-1 when either is unknown)."""
    out = a * base + b
    out[(a < 0) | (b < 0)] = -1
    return out


def candidate_pairs(coded: _Coded, n_right: int, max_block: int,
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, int]]]:
    """The union of the ``BLOCKING_PASSES`` pairs as (left row, right row) arrays, and per pass the
    pairs it found and the oversized keys it skipped."""
    keys, stats = [], {}
    for a, b in BLOCKING_PASSES:
        base = int(max(coded.left[b].max(initial=-1), coded.right[b].max(initial=-1))) + 1
        li, ri, skipped = _join(_combine(coded.left[a], coded.left[b], base),
                                _combine(coded.right[a], coded.right[b], base), max_block)
        keys.append(li * n_right + ri)
        stats[f"{a}+{b}"] = {"pairs": len(li), "skipped_keys": skipped}
    pair_keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
    return pair_keys // n_right, pair_keys % n_right, stats


def _encode(values: Sequence[str]) -> tuple[np.ndarray, pa.Array]:
    """Integer codes of strings, indices into the distinct values ("" → -1), hashed by Arrow in
    C++ (a dict in a Python loop took seconds per million); and the distinct values."""
    encoded = pa.array(values, pa.string()).dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    empty = pc.index(encoded.dictionary, "").as_py()
    if empty >= 0:
        codes[codes == empty] = -1
    return codes, encoded.dictionary


def _factorize(left: Sequence[str], right: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes over both sides ("" → -1) and each code's share of the known values."""
    codes, distinct = _encode([*left, *right])
    lc, rc = codes[:len(left)], codes[len(left):]
    counts = np.bincount(codes[codes >= 0], minlength=len(distinct)).astype(float)
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
                        ("birth", left.birth, right.birth),
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


def _id_codes(ids: Sequence[str]) -> tuple[np.ndarray, int]:
    """Per row, the index of its id among the distinct ids (never empty); and their number."""
    codes, distinct = _encode(ids)
    return codes, len(distinct)


def _twin_rows(birth: np.ndarray, address: np.ndarray, name: np.ndarray) -> np.ndarray:
    """Rows that share 生年月日 and 住所 (both known) with a row of another 氏名 in their table."""
    known = (birth >= 0) & (address >= 0)
    out = np.zeros(len(birth), dtype=bool)
    if not known.any():
        return out
    rows = np.nonzero(known)[0]
    _, place = np.unique(birth[rows] * (int(address.max()) + 1) + address[rows], return_inverse=True)
    base = int(name.max(initial=-1)) + 2
    distinct = np.unique(place * base + name[rows] + 1) // base  # each (place, 氏名) once
    names_per_place = np.bincount(distinct, minlength=int(place.max()) + 1)
    out[rows] = names_per_place[place] > 1
    return out


def _first_chars(values: np.ndarray) -> np.ndarray:
    return np.fromiter((ord(v[0]) if v else 0 for v in values), np.int64, len(values))


def held_pairs(li: np.ndarray, ri: np.ndarray, levels: list[np.ndarray], fl: TableFeatures,
               fr: TableFeatures, coded: _Coded) -> np.ndarray:
    """Per pair, the index into ``HOLD_REASONS`` + 1 of why it may not be linked automatically, or
    0 (see the module docstring, point 6)."""
    reasons = np.zeros(len(li), dtype=np.int8)
    kinds = list(HOLD_REASONS)
    nl, nr = coded.left["name"], coded.right["name"]
    twins = _twin_rows(coded.left["birth"], coded.left["address"], nl)[li] | \
        _twin_rows(coded.right["birth"], coded.right["address"], nr)[ri]
    reasons[twins & (nl[li] != nr[ri])] = kinds.index("twins") + 1
    starts = []
    for values_l, values_r in ((fl.name, fr.name), (fl.kana, fr.kana)):
        a, b = _first_chars(values_l)[li], _first_chars(values_r)[ri]
        starts.append(((a > 0) & (b > 0), a == b))
    (name_known, name_alike), (kana_known, kana_alike) = starts
    alike = (name_known | kana_known) & (~name_known | name_alike) & (~kana_known | kana_alike)
    reasons[(levels[COMPARISONS.index("name")] >= 4) & alike] = kinds.index("given_name") + 1
    sl, sr = fl.sex[li], fr.sex[ri]
    reasons[np.isin(sl, (1, 2)) & np.isin(sr, (1, 2)) & (sl != sr)] = kinds.index("sex") + 1
    return reasons


def match_tables(left: ResidentTable, right: ResidentTable, settings: MatchSettings | None = None,
                 ) -> MatchResult:
    """Link ``left`` and ``right`` one-to-one (see the module docstring)."""
    settings = settings or MatchSettings()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    lid, n_left = _id_codes(left.ids)
    rid, n_right = _id_codes(right.ids)
    fl, fr = table_features(left), table_features(right)
    coded = _code_tables(left, right, fl, fr)
    li, ri, blocking = candidate_pairs(coded, max(len(right), 1), settings.max_block)
    timings["blocking"] = time.perf_counter() - t0
    empty = MatchResult([], [], n_left, n_right, len(li), 0.0, seconds=timings, rows_left=len(left),
                        rows_right=len(right), repeats_left=left.repeats, repeats_right=right.repeats,
                        blocking=blocking)
    if len(left) == 0 or len(right) == 0 or len(li) == 0:
        return empty
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
    held = held_pairs(li, ri, levels, fl, fr, coded)
    timings["comparison"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    m, u, lam = estimate_parameters(levels, random_levels, n_left, n_right, settings.em_iterations)
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
    links, review = _assign(left, right, (li, lid, n_left), (ri, rid, n_right), weight, prob,
                            np.stack(field_w, axis=1), held, settings)
    timings["assignment"] = time.perf_counter() - t3
    empty.links, empty.review, empty.match_rate = links, review, lam
    empty.m = {c: mf.round(5).tolist() for c, mf in zip(COMPARISONS, m, strict=True)}
    empty.u = {c: uf.round(5).tolist() for c, uf in zip(COMPARISONS, u, strict=True)}
    return empty


def _assign(left: ResidentTable, right: ResidentTable, lside: tuple[np.ndarray, np.ndarray, int],
            rside: tuple[np.ndarray, np.ndarray, int], weight: np.ndarray, prob: np.ndarray,
            field_w: np.ndarray, held: np.ndarray, settings: MatchSettings) -> tuple[list[Link], list[Link]]:
    """Greedy one-to-one over ids: best pairs first, each id used once; split at the link
    threshold, held pairs going to review whatever their probability."""
    (li, lid, n_left), (ri, rid, n_right) = lside, rside
    idx = np.nonzero(prob >= settings.review_threshold)[0]
    idx = idx[np.lexsort((ri[idx], li[idx], -weight[idx]))]
    used_left = bytearray(n_left)
    used_right = bytearray(n_right)
    links: list[Link] = []
    review: list[Link] = []
    reasons = ("", *HOLD_REASONS)
    link_at = settings.link_threshold
    columns = (li[idx], ri[idx], lid[li[idx]], rid[ri[idx]], prob[idx], weight[idx], held[idx])
    gc_was_on = gc.isenabled()
    gc.disable()  # a million new Links hold no cycles; collections over them cost more than the loop
    try:
        for (a, b, ia, ib, p, w, h), fw in zip(zip(*(c.tolist() for c in columns), strict=True),
                                               field_w[idx].tolist(), strict=True):
            if used_left[ia] or used_right[ib]:
                continue
            used_left[ia] = used_right[ib] = 1
            link = Link(left.ids[a], right.ids[b], p, w, tuple(fw), reasons[h])
            (links if p >= link_at and not h else review).append(link)
    finally:
        if gc_was_on:
            gc.enable()
    return links, review


# --- files --------------------------------------------------------------------------------------

def write_links(path: str | Path, links: Sequence[Link], *, held: bool = False) -> None:
    """CSV: left_id, right_id, score (match probability), match_weight, then w_<field> per field;
    with ``held`` a last column, held, naming why a pair was kept from linking (``HOLD_REASONS``)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["left_id", "right_id", "score", "match_weight", *(f"w_{x}" for x in COMPARISONS),
                         *(["held"] if held else [])])
        for k in links:
            writer.writerow([k.left_id, k.right_id, f"{k.probability:.6f}", f"{k.match_weight:.3f}",
                             *(f"{w:.3f}" for w in k.field_weights), *([k.held] if held else [])])


def write_repeats(path: str | Path, result: MatchResult, left_source: str, right_source: str) -> None:
    """CSV of the rows whose id an earlier row of the same file has: file, line, id, first_line,
    same (1 when the row repeats the first one's normalised cells, 0 when it differs)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "line", "id", "first_line", "same"])
        for source, repeats in ((left_source, result.repeats_left), (right_source, result.repeats_right)):
            for r in repeats:
                writer.writerow([source, r.line, r.id, r.first_line, int(r.same)])


def default_review_path(out: str | Path) -> Path:
    """``links.csv`` → ``links.review.csv`` beside it."""
    return _beside(out, ".review")


def default_repeats_path(out: str | Path) -> Path:
    """``links.csv`` → ``links.repeated_ids.csv`` beside it."""
    return _beside(out, ".repeated_ids")


def _beside(out: str | Path, tag: str) -> Path:
    out = Path(out)
    return out.with_name(out.stem + tag + (out.suffix or ".csv"))


def match_files(left_path: str | Path, right_path: str | Path, out: str | Path,
                review_path: str | Path | None = None, settings: MatchSettings | None = None,
                repeats_path: str | Path | None = None) -> MatchResult:
    """Read both CSVs, link them, write the links and the review band (and, when an id repeats in
    either file, the repeats beside them); returns the result."""
    t0 = time.perf_counter()
    left, right = read_residents(left_path), read_residents(right_path)
    read_seconds = time.perf_counter() - t0
    result = match_tables(left, right, settings)
    result.seconds = {"read": read_seconds, **result.seconds}
    write_links(out, result.links)
    write_links(review_path or default_review_path(out), result.review, held=True)
    if result.repeats_left or result.repeats_right:
        write_repeats(repeats_path or default_repeats_path(out), result, str(left_path), str(right_path))
    result.seconds["total"] = time.perf_counter() - t0
    return result

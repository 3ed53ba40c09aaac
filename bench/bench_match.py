"""Bulk identity matching benchmark: our matcher against Splink 4 (DuckDB) on the same data.

Run: ``python bench/bench_match.py [--quick] [--size N] [--seed S] [--threshold P] [--keep]``

Generates two platforms' resident tables (100,000 × 100,000; ``--quick`` 10,000) with
``registry.identity.synthetic.generate_linkage`` from a fixed seed (70 % of people on both,
異体字/kana/width/date/address-notation noise, typos, moves, marriages, missing fields), writes
them as CSV, and links them twice in this run:

* ours: ``match_files`` end to end (read and normalise both CSVs, block, EM, score, one-to-one,
  write links and review CSVs);
* Splink 4 with the DuckDB backend, timed from the same CSVs: they are read and normalised with
  the same code (Splink has no Japanese normalisation of its own), then Splink gets the same
  blocking rules and comparisons of the same shape (氏名・ヨミ as one comparison with exact /
  Jaro–Winkler levels and term-frequency adjustment, 生年月日 with a one-component-wrong level,
  性別, 住所 with 町丁目/町字 levels) and is trained as its docs recommend: the prior from
  deterministic rules, u by random sampling (1e7 pairs), m by EM in two sessions (blocked on
  生年月日, then on 氏名+ヨミ), prediction, then ``cluster_using_single_best_links`` (one-to-one)
  at the same match-probability threshold as ours.

Prints one JSON object per figure on stdout (progress goes to stderr): precision, recall, F1
against the generator's true pairs, wall seconds and their ratio, review-band and pair counts.
Goal: F1 ≥ Splink's and time ≤ Splink's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from registry.identity.bulk_match import MatchSettings, match_files
from registry.identity.residents import ResidentTable, read_residents
from registry.identity.synthetic import generate_linkage, write_csv

SEED = 20260401
PLATFORMS = ("platform_a", "platform_b")  # Splink's source_dataset names ("left" is an SQL keyword)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(figure: str, ours: float, splink: float, unit: str, goal: str, n: int, **extra: Any) -> None:
    print(json.dumps({"figure": figure, "value": ours, "ours": ours, "splink": splink, "unit": unit,
                      "goal": goal, "n": n, **extra}, ensure_ascii=False), flush=True)


def scores(found: set[tuple[str, str]], truth: set[tuple[str, str]]) -> dict[str, float]:
    tp = len(found & truth)
    precision = tp / len(found) if found else 0.0
    recall = tp / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 5), "recall": round(recall, 5), "f1": round(f1, 5),
            "links": len(found), "true_positives": tp}


# --- Splink ---------------------------------------------------------------------------------------

def splink_frame(table: ResidentTable) -> Any:
    """The normalised table as Splink input, with the derived columns its rules need."""
    import pandas as pd

    from registry.identity.bulk_match import table_features

    features = table_features(table)
    ymd = features.ymd

    def none_if_empty(values: Any) -> list[Any]:
        return [v if v else None for v in values]

    return pd.DataFrame({
        "unique_id": table.ids,
        "name": none_if_empty(table.name),
        "name_kana": none_if_empty(list(features.kana)),
        "name1": none_if_empty([n[:1] for n in table.name]),
        "birth_date": none_if_empty(table.birth),
        "birth_year": [int(y) if y else None for y in ymd[:, 0]],
        "birth_month": [int(m) if m else None for m in ymd[:, 1]],
        "birth_day": [int(d) if d else None for d in ymd[:, 2]],
        "sex": [s if s != "0" else None for s in table.sex],
        "address": none_if_empty(list(features.address_key)),
        "pref": none_if_empty(features.pref),
        "addr_town": none_if_empty(features.town),
        "addr_block": none_if_empty(features.block),
    })


def splink_settings() -> Any:
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    jw = "jaro_winkler_similarity"
    # the term-frequency adjustment scales the level's own u (the levels are not one-column matches)
    exact_tf = {"disable_tf_exact_match_detection": True}
    name = cl.CustomComparison(output_column_name="name", comparison_levels=[
        {"sql_condition": "(name_l IS NULL OR name_r IS NULL) AND "
                          "(name_kana_l IS NULL OR name_kana_r IS NULL)",
         "is_null_level": True},
        {"sql_condition": "name_l = name_r AND name_kana_l = name_kana_r",
         "tf_adjustment_column": "name", "tf_adjustment_weight": 1.0, **exact_tf},
        {"sql_condition": "(name_l = name_r AND (name_kana_l IS NULL OR name_kana_r IS NULL)) OR "
                          "(name_kana_l = name_kana_r AND (name_l IS NULL OR name_r IS NULL))",
         "tf_adjustment_column": "name", "tf_adjustment_weight": 1.0, **exact_tf},
        {"sql_condition": "name_l = name_r OR name_kana_l = name_kana_r"},
        {"sql_condition": f"{jw}(name_l, name_r) >= 0.85 OR {jw}(name_kana_l, name_kana_r) >= 0.9"},
        {"sql_condition": f"{jw}(name_l, name_r) >= 0.7 OR {jw}(name_kana_l, name_kana_r) >= 0.75"},
        {"sql_condition": "ELSE"},
    ])
    birth = cl.CustomComparison(output_column_name="birth_date", comparison_levels=[
        {"sql_condition": "birth_date_l IS NULL OR birth_date_r IS NULL", "is_null_level": True},
        {"sql_condition": "birth_date_l = birth_date_r"},
        {"sql_condition": "(CAST(birth_year_l = birth_year_r AS INTEGER) "
                          "+ CAST(birth_month_l = birth_month_r AS INTEGER) "
                          "+ CAST(birth_day_l = birth_day_r AS INTEGER)) = 2 OR "
                          "(birth_year_l = birth_year_r AND birth_month_l = birth_day_r "
                          "AND birth_day_l = birth_month_r)"},
        {"sql_condition": "ELSE"},
    ])
    address = cl.CustomComparison(output_column_name="address", comparison_levels=[
        {"sql_condition": "address_l IS NULL OR address_r IS NULL", "is_null_level": True},
        {"sql_condition": "address_l = address_r AND (pref_l IS NULL OR pref_r IS NULL OR pref_l = pref_r)",
         "tf_adjustment_column": "address", "tf_adjustment_weight": 1.0, **exact_tf},
        {"sql_condition": f"addr_block_l = addr_block_r OR {jw}(address_l, address_r) >= 0.9"},
        {"sql_condition": "addr_town_l = addr_town_r"},
        {"sql_condition": "ELSE"},
    ])
    return SettingsCreator(
        link_type="link_only",
        comparisons=[name, birth, cl.ExactMatch("sex"), address],
        blocking_rules_to_generate_predictions=[
            block_on("birth_date"), block_on("name_kana", "birth_year"), block_on("name", "birth_year"),
            block_on("name", "name_kana"), block_on("address", "name1")],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def run_splink(left_csv: Path, right_csv: Path, threshold: float, review_threshold: float,
               ) -> tuple[set[tuple[str, str]], dict[str, Any]]:
    """Splink's one-to-one links at ``threshold``, and timings; progress goes to stderr."""
    from splink import DuckDBAPI, Linker, block_on

    t0 = time.perf_counter()
    left, right = read_residents(left_csv), read_residents(right_csv)
    frames = [splink_frame(left), splink_frame(right)]
    prepared = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        linker = Linker(frames, splink_settings(), DuckDBAPI(), input_table_aliases=list(PLATFORMS))
        linker.training.estimate_probability_two_random_records_match(
            [block_on("name", "birth_date"), block_on("name_kana", "birth_date")], recall=0.9)
        linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("name", "name_kana"))
        trained = time.perf_counter()
        predictions = linker.inference.predict(threshold_match_probability=review_threshold)
        clusters = linker.clustering.cluster_using_single_best_links(
            predictions, duplicate_free_datasets=list(PLATFORMS), threshold_match_probability=threshold)
        frame = clusters.as_pandas_dataframe()
    done = time.perf_counter()
    sizes = frame.groupby("cluster_id")["unique_id"].transform("size")
    pairs_frame = frame[sizes == 2]
    a = pairs_frame[pairs_frame["source_dataset"] == PLATFORMS[0]].set_index("cluster_id")["unique_id"]
    b = pairs_frame[pairs_frame["source_dataset"] == PLATFORMS[1]].set_index("cluster_id")["unique_id"]
    joined = a.to_frame("a").join(b.to_frame("b"), how="inner")
    pairs = {(str(x), str(y)) for x, y in zip(joined["a"], joined["b"], strict=True)}
    n_pred = len(predictions.as_pandas_dataframe())
    return pairs, {"seconds": done - t0, "read_normalise_s": prepared - t0, "train_s": trained - prepared,
                   "predict_cluster_s": done - trained, "pairs_above_review_threshold": int(n_pred)}


# --- main -----------------------------------------------------------------------------------------

def run(args: argparse.Namespace, work: Path) -> None:
    n = args.size or (10_000 if args.quick else 100_000)
    progress(f"generating {n:,} × {n:,} residents (seed {args.seed})")
    data = generate_linkage(n, seed=args.seed)
    left_csv, right_csv = work / "left.csv", work / "right.csv"
    write_csv(data.left, left_csv)
    write_csv(data.right, right_csv, bom=True)
    truth = data.true_pairs
    del data

    progress("ours: match_files")
    settings = MatchSettings(link_threshold=args.threshold, review_threshold=args.review_threshold)
    t0 = time.perf_counter()
    result = match_files(left_csv, right_csv, work / "links.csv", work / "review.csv", settings)
    ours_s = time.perf_counter() - t0
    ours = scores({(k.left_id, k.right_id) for k in result.links}, truth)
    review_true = len({(k.left_id, k.right_id) for k in result.review} & truth)
    progress(f"ours: {ours} in {ours_s:.1f} s {dict((k, round(v, 2)) for k, v in result.seconds.items())}")

    progress("splink: DuckDB backend")
    splink_links, splink_info = run_splink(left_csv, right_csv, args.threshold, args.review_threshold)
    theirs = scores(splink_links, truth)
    progress(f"splink: {theirs} {splink_info}")

    for key, figure in (("f1", "bulk_match_f1"), ("precision", "bulk_match_precision"),
                        ("recall", "bulk_match_recall")):
        emit(figure, ours[key], theirs[key], "ratio", "ours >= splink" if key == "f1" else "—", n,
             threshold=args.threshold, ours_links=ours["links"], splink_links=theirs["links"],
             true_pairs=len(truth))
    emit("bulk_match_wall_s", round(ours_s, 2), round(splink_info["seconds"], 2), "s", "ours <= splink", n,
         ratio=round(ours_s / splink_info["seconds"], 3),
         ours_phases={k: round(v, 2) for k, v in result.seconds.items()},
         splink_phases={k: (round(v, 2) if isinstance(v, float) else v) for k, v in splink_info.items()})
    emit("bulk_match_review_band", len(result.review), None, "pairs", "—", n,
         review_true_pairs=review_true, review_threshold=args.review_threshold)
    emit("bulk_match_candidate_pairs", result.candidate_pairs, None, "pairs", "—", n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 × 10,000 instead of 100,000")
    parser.add_argument("--size", type=int, default=0, help="records per table")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threshold", type=float, default=MatchSettings.link_threshold,
                        help="match probability for a link (both matchers)")
    parser.add_argument("--review-threshold", type=float, default=MatchSettings.review_threshold)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bench_match_"))
    try:
        run(args, work)
    finally:
        if args.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

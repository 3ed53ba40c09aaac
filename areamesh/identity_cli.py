"""``areamesh identity …``: bulk reconciliation of two platforms' resident tables (名寄せ)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mesh.cli_support import report_errors
from mesh.errors import InvalidRequest


@click.group(name="identity")
def identity() -> None:
    """本人確認・名寄せ（基本4情報の照合） / identity linkage on the 基本4情報."""


@identity.command()
@click.option("--left", "left_path", required=True, type=click.Path(dir_okay=False),
              help="一方の住民表 CSV / left resident CSV (id,name,name_kana,birth_date,sex,address; "
                   "氏名・フリガナ・生年月日・性別・住所 の見出しも可).")
@click.option("--right", "right_path", required=True, type=click.Path(dir_okay=False),
              help="もう一方の住民表 CSV / right resident CSV (same columns).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="リンク結果 CSV / links CSV (left_id,right_id,score,match_weight,w_<field>…).")
@click.option("--review", "review_path", type=click.Path(dir_okay=False), default=None,
              help="要確認ペアの CSV / review CSV for the uncertain band [default: OUT stem + .review.csv].")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.9, show_default=True,
              help="リンクとする一致確率 / match probability at or above which a pair is linked.")
@click.option("--review-threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.3,
              show_default=True,
              help="要確認とする一致確率の下限 / lowest match probability written to the review file.")
@click.option("--json", "as_json", is_flag=True, help="要約を JSON で出力 / print the summary as JSON.")
@report_errors
def match(left_path: str, right_path: str, out_path: str, review_path: str | None, threshold: float,
          review_threshold: float, as_json: bool) -> None:
    """2つの住民表を基本4情報で確率的に名寄せする / link two resident tables on the 基本4情報.

    ブロッキングと Fellegi–Sunter 法（EM 推定）で一致確率を求め、1対1 に対応付けます。
    確率が --threshold 以上のペアを OUT に、--review-threshold 以上のペアを要確認ファイルに
    書きます。性別や名が異なるペア（双子など）は確率によらず要確認に回します。
    同じ ID が複数行にあっても止まらず、同じ人の版として照合し、
    OUT と同じ場所の *.repeated_ids.csv に一覧を書きます。
    Blocking plus Fellegi–Sunter scoring (m/u by EM), one-to-one assignment; pairs whose sex or
    given name differ go to review whatever their score; repeated ids are reported, not fatal.
    """
    from registry.identity.bulk_match import (
        MatchSettings,
        default_repeats_path,
        default_review_path,
        match_files,
    )

    if review_threshold > threshold:
        raise InvalidRequest("--review-threshold must not exceed --threshold",
                             message_ja="--review-threshold は --threshold 以下にしてください")
    review = Path(review_path) if review_path else default_review_path(out_path)
    for target in (Path(out_path), review):
        if not target.parent.is_dir():
            raise InvalidRequest(f"{target}: output folder does not exist",
                                 message_ja=f"{target}: 出力先のフォルダがありません")
    settings = MatchSettings(link_threshold=threshold, review_threshold=review_threshold)
    repeats_file = default_repeats_path(out_path)
    try:
        result = match_files(left_path, right_path, out_path, review, settings, repeats_file)
    except OSError as exc:
        raise InvalidRequest(f"{exc.filename}: cannot write: {exc.strerror}",
                             message_ja=f"{exc.filename}: 書き込めません（{exc.strerror}）") from None
    summary = {"links": len(result.links), "review": len(result.review),
               "unmatched_left": result.unmatched_left, "unmatched_right": result.unmatched_right,
               "candidate_pairs": result.candidate_pairs, "seconds": round(result.seconds["total"], 2),
               "held": sum(1 for k in result.review if k.held),
               "rows_left": result.rows_left, "rows_right": result.rows_right,
               "repeated_ids_left": len(result.repeats_left), "repeated_ids_right": len(result.repeats_right),
               "blocking": result.blocking,
               "phase_seconds": {k: round(v, 2) for k, v in result.seconds.items()},
               "out": str(out_path), "review_file": str(review)}
    repeated = len(result.repeats_left) + len(result.repeats_right)
    if repeated:
        summary["repeated_ids_file"] = str(repeats_file)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    click.echo(f"リンク / links:        {summary['links']:,}  → {out_path}")
    click.echo(f"要確認 / review:       {summary['review']:,}  → {review}"
               + (f"（うち性別・名の相違 / held: {summary['held']:,}）" if summary["held"] else ""))
    click.echo(f"未リンク / unmatched:  left {summary['unmatched_left']:,} / "
               f"right {summary['unmatched_right']:,}")
    click.echo(f"比較ペア / pairs:      {summary['candidate_pairs']:,}")
    if repeated:
        click.echo(f"重複ID / repeated ids: left {len(result.repeats_left):,} / "
                   f"right {len(result.repeats_right):,} 行（同じ人の版として照合 / matched as versions "
                   f"of one record）→ {repeats_file}")
    click.echo(f"時間 / time:           {summary['seconds']:.1f} s")

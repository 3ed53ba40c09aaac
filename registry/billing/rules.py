"""The billing rule file (費用按分ルール): one YAML file per billing period, declarative.

```yaml
title: 2026年11月 データ連携基盤 費用按分          # shown on every statement
period: 2026-11                # optional; when given it must equal the run's --period
participants: certified_local_governments   # or: certified, or a list of participant ids
population:                    # for method population: builtin, csv (a path beside this file)
  builtin: hyogo-2020-census   #   or values: {"282014": 530495, ...}
items:
  - id: platform-fixed         # [a-z0-9-], unique
    name: 基盤運用費（固定費・共用費）
    kind: fixed                # fixed (固定費・共用費) | variable (変動費)
    amount: 1200000            # whole yen, 0 or more
    method: population         # equal (等分負担) | population (人口比按分) | usage (従量課金)
    basis: records_received    # usage only: a metered figure (FIGURES)
    floor: 0.02                # optional: each pays at least this fraction of the item
    cap: 0.5                   # optional: nobody pays more than this fraction (in yen: the ceiling)
    cite: "seed 002 §4-1 人口比按分"
    discount:                  # optional: lighter share for data providers (appendix (4-2))
      basis: records_provided  # the figure that earns it (default records_provided)
      rate: 0.3                # the largest provider gets 30% off its share, others pro rata
      # per_unit: 0.5          #   or: yen of credit per unit of the figure
      cap_rate: 0.3            # never more than this fraction of its share (default 1)
      cap_yen: 100000          # never more than this many yen (optional)
```

Fractions (floor, cap, rate, cap_rate, per_unit) are read as decimals (``0.1`` is exactly one
tenth). ``parse_rules`` reports every problem at once, each with its key path
(``items[2].discount.rate``) and a message in English and Japanese, as dataset files do.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mesh.datasets import FieldError
from mesh.errors import InvalidRequest

MAX_RULES_BYTES = 256 * 1024
MAX_ITEMS = 100
MAX_AMOUNT = 10**12                 # a trillion yen: far beyond any platform's budget
FIGURES = ("records_provided", "records_received", "transfers_provided", "transfers_received",
           "bytes_provided", "bytes_received", "api_calls", "consented_records")
KINDS = ("fixed", "variable")
METHODS = ("equal", "population", "usage")
SELECTIONS = ("certified", "certified_local_governments")
BUILTIN_POPULATION = {"hyogo-2020-census": "hyogo_population_2020.csv"}
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})\Z")
_PID = re.compile(r"^\d{6}\Z|^\d{13}\Z")


@dataclass(frozen=True)
class Discount:
    basis: str
    rate: Fraction | None
    per_unit: Fraction | None
    cap_rate: Fraction
    cap_yen: int | None
    cite: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"basis": self.basis, "rate": _dec(self.rate), "per_unit": _dec(self.per_unit),
                "cap_rate": _dec(self.cap_rate), "cap_yen": self.cap_yen, "cite": self.cite}


@dataclass(frozen=True)
class CostItem:
    id: str
    name: str
    kind: str
    amount: int
    method: str
    basis: str | None = None
    floor: Fraction = Fraction(0)
    cap: Fraction | None = None
    discount: Discount | None = None
    cite: str = ""
    index: int = 0                       # its place in the file, for key paths of run errors

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "amount": self.amount,
                "method": self.method, "basis": self.basis, "floor": _dec(self.floor),
                "cap": _dec(self.cap), "cite": self.cite,
                "discount": self.discount.to_json() if self.discount else None}


@dataclass(frozen=True)
class PopulationTable:
    """Population per local government code, with where the figures come from."""

    values: dict[str, int]
    source: str
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BillingRules:
    title: str
    period: str | None
    participants: str | tuple[str, ...]
    items: tuple[CostItem, ...]
    population: PopulationTable | None
    digest: str                          # sha256 of the rule file's bytes
    text: str                            # the rule file as given (kept with the run)


def _dec(x: Fraction | None) -> str | None:
    if x is None:
        return None
    if x.denominator == 1:
        return str(x.numerator)
    return str(Decimal(x.numerator) / Decimal(x.denominator))


class _Check:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, path: str, en: str, ja: str) -> None:
        self.errors.append(FieldError(path, en, ja))

    def text(self, doc: dict, key: str, path: str, *, required: bool, limit: int = 200) -> str:
        value = doc.get(key)
        if value is None:
            if required:
                self.add(path, "is required", "必須項目です")
            return ""
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            self.add(path, f"must be text of 1-{limit} characters",
                     f"1〜{limit}文字の文字列で指定してください")
            return ""
        return value.strip()

    def fraction(self, doc: dict, key: str, path: str, *, low: Fraction = Fraction(0),
                 high: Fraction | None = Fraction(1)) -> Fraction | None:
        value = doc.get(key)
        if value is None:
            return None
        bad = isinstance(value, bool) or not isinstance(value, int | float | str)
        try:
            x = None if bad else Fraction(Decimal(str(value)))
        except (InvalidOperation, ValueError):
            x = None
        if x is None or x < low or (high is not None and x > high):
            rng = f"between {_dec(low)} and {_dec(high)}" if high is not None else \
                f"at least {_dec(low)}"
            rng_ja = f"{_dec(low)}以上{_dec(high)}以下" if high is not None else f"{_dec(low)}以上"
            self.add(path, f"must be a decimal number {rng}, not {value!r}",
                     f"{rng_ja}の数値（小数）で指定してください")
            return None
        return x

    def yen(self, doc: dict, key: str, path: str, *, required: bool) -> int | None:
        value = doc.get(key)
        if value is None:
            if required:
                self.add(path, "is required (whole yen)", "必須項目です（円、整数）")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
            self.add(path, f"must be whole yen from 0 to {MAX_AMOUNT}, not {value!r}",
                     f"0〜{MAX_AMOUNT}の整数（円）で指定してください")
            return None
        return value

    def choice(self, doc: dict, key: str, path: str, options: tuple[str, ...],
               default: str | None = None) -> str | None:
        value = doc.get(key, default)
        if value not in options:
            allowed = ", ".join(options)
            self.add(path, f"must be one of {allowed}; got {value!r}",
                     f"次のいずれかを指定してください: {allowed}")
            return None
        return value


def load_rule_file(path: Path) -> BillingRules:
    """Read and check a rule file; a population CSV it names is read beside it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read the rule file {path}: {exc.strerror}",
                             message_ja=f"ルールファイル {path} を読めません",
                             code="invalid_billing_rules") from None
    return parse_rules(data, base_dir=path.parent, name=path.name)


def parse_rules(data: bytes, *, base_dir: Path | None = None, name: str = "rule file"
                ) -> BillingRules:
    """The checked rules; ``InvalidRequest`` (code ``invalid_billing_rules``) listing every
    error with its key path otherwise. ``base_dir``: where ``population.csv`` is looked up
    (None: CSV files are refused, as for a file uploaded through the console)."""
    if len(data) > MAX_RULES_BYTES:
        raise _invalid([FieldError("", f"{name} is {len(data)} bytes; the limit is "
                                   f"{MAX_RULES_BYTES}", "ルールファイルが大きすぎます（上限256KB）")])
    try:
        text = data.decode("utf-8-sig")
        doc = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise _invalid([FieldError("", f"{name} is not UTF-8",
                                   "ルールファイルはUTF-8で保存してください")]) from None
    except yaml.YAMLError as exc:
        raise _invalid([FieldError("", f"{name} is not valid YAML: {exc}",
                                   "ルールファイルのYAMLの書式が正しくありません")]) from None
    c = _Check()
    if not isinstance(doc, dict):
        c.add("", "the rule file must be a mapping with title, participants and items",
              "ルールファイルは title・participants・items を持つマッピングにしてください")
        raise _invalid(c.errors)
    known = {"title", "period", "participants", "population", "items", "notes"}
    for key in sorted(set(doc) - known, key=str):
        c.add(str(key), f"unknown key; use {', '.join(sorted(known))}", "不明なキーです")
    title = c.text(doc, "title", "title", required=True)
    period = doc.get("period")
    if period is not None:
        period = str(period)
        if not re.match(r"^\d{4}(-\d{2}(-\d{2})?)?$|^\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}$",
                        period):
            c.add("period", f"must be YYYY, YYYY-MM, YYYY-MM-DD or FROM..TO, not {period!r}",
                  "YYYY、YYYY-MM、YYYY-MM-DD、FROM..TO のいずれかで指定してください")
    participants = _participants(doc.get("participants"), c)
    items = _items(doc.get("items"), c)
    population = _population(doc.get("population"), c, base_dir)
    if population is None and "population" not in doc and any(
            i.method == "population" for i in items):
        c.add("population", "is required when an item uses method population",
              "人口比按分の費目があるときは population（人口表）が必要です")
    if c.errors:
        raise _invalid(c.errors)
    return BillingRules(title, period, participants, tuple(items), population,
                        "sha256:" + hashlib.sha256(data).hexdigest(), text)


def _invalid(errors: list[FieldError]) -> InvalidRequest:
    lines = "; ".join(f"{e.field or '(file)'}: {e.message}" for e in errors[:20])
    lines_ja = "; ".join(f"{e.field or '(ファイル)'}: {e.message_ja}" for e in errors[:20])
    return InvalidRequest(f"billing rules have {len(errors)} error(s): {lines}",
                          message_ja=f"費用按分ルールに {len(errors)} 件の誤りがあります: {lines_ja}",
                          code="invalid_billing_rules",
                          details={"errors": [e.to_json() for e in errors]})


def _participants(value: Any, c: _Check) -> str | tuple[str, ...]:
    if value is None:
        c.add("participants", f"is required: {', '.join(SELECTIONS)} or a list of participant ids",
              f"必須項目です: {'、'.join(SELECTIONS)} または参加者IDのリスト")
        return ()
    if isinstance(value, str):
        if value not in SELECTIONS:
            c.add("participants", f"must be one of {', '.join(SELECTIONS)} or a list of ids",
                  f"{'、'.join(SELECTIONS)} のいずれか、または参加者IDのリストで指定してください")
        return value
    if not isinstance(value, list) or not value:
        c.add("participants", "must be a non-empty list of participant ids",
              "参加者IDのリスト（1件以上）で指定してください")
        return ()
    out: list[str] = []
    for i, pid in enumerate(value):
        pid = str(pid)
        if not _PID.match(pid):
            c.add(f"participants[{i}]", f"{pid!r} is not a participant id (6 or 13 digits)",
                  "参加者ID（6桁または13桁の数字）で指定してください")
        elif pid in out:
            c.add(f"participants[{i}]", f"{pid} is listed twice", "同じ参加者が重複しています")
        out.append(pid)
    return tuple(out)


def _items(value: Any, c: _Check) -> list[CostItem]:
    if not isinstance(value, list) or not value:
        c.add("items", "is required: a list of cost items", "必須項目です: 費目のリスト")
        return []
    if len(value) > MAX_ITEMS:
        c.add("items", f"has {len(value)} items; the limit is {MAX_ITEMS}",
              f"費目は{MAX_ITEMS}件以内にしてください")
    out: list[CostItem] = []
    seen: set[str] = set()
    keys = {"id", "name", "kind", "amount", "method", "basis", "floor", "cap", "discount", "cite"}
    for i, doc in enumerate(value):
        at = f"items[{i}]"
        if not isinstance(doc, dict):
            c.add(at, "must be a mapping (id, name, kind, amount, method)",
                  "費目はマッピング（id, name, kind, amount, method）で指定してください")
            continue
        for key in sorted(set(doc) - keys, key=str):
            c.add(f"{at}.{key}", "unknown key", "不明なキーです")
        item_id = doc.get("id")
        if not isinstance(item_id, str) or not _ID.match(item_id):
            c.add(f"{at}.id", "must be 1-63 characters of a-z, 0-9 and '-'",
                  "英小文字・数字・ハイフン（1〜63文字）で指定してください")
            item_id = ""
        elif item_id in seen:
            c.add(f"{at}.id", f"{item_id} is used by another item", "費目IDが重複しています")
        seen.add(item_id)
        name = c.text(doc, "name", f"{at}.name", required=True)
        kind = c.choice(doc, "kind", f"{at}.kind", KINDS)
        amount = c.yen(doc, "amount", f"{at}.amount", required=True)
        method = c.choice(doc, "method", f"{at}.method", METHODS)
        basis = None
        if method == "usage":
            basis = c.choice(doc, "basis", f"{at}.basis", FIGURES)
        elif doc.get("basis") is not None:
            c.add(f"{at}.basis", "is only for method usage", "basis は method: usage のときだけ指定します")
        low = c.fraction(doc, "floor", f"{at}.floor") or Fraction(0)
        cap = c.fraction(doc, "cap", f"{at}.cap")
        if cap is not None and cap == 0:
            c.add(f"{at}.cap", "must be more than 0", "0より大きい値にしてください")
        if cap is not None and low > cap:
            c.add(f"{at}.floor", "must not be more than cap", "cap 以下にしてください")
        discount = _discount(doc.get("discount"), f"{at}.discount", c)
        cite = c.text(doc, "cite", f"{at}.cite", required=False, limit=500)
        if all(v is not None for v in (kind, amount, method)) and item_id:
            out.append(CostItem(item_id, name, kind, amount, method, basis, low, cap,  # type: ignore[arg-type]
                                discount, cite, i))
    return out


def _discount(doc: Any, at: str, c: _Check) -> Discount | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        c.add(at, "must be a mapping (basis, rate or per_unit, cap_rate, cap_yen)",
              "マッピング（basis, rate または per_unit, cap_rate, cap_yen）で指定してください")
        return None
    for key in sorted(set(doc) - {"basis", "rate", "per_unit", "cap_rate", "cap_yen", "cite"},
                      key=str):
        c.add(f"{at}.{key}", "unknown key", "不明なキーです")
    basis = c.choice(doc, "basis", f"{at}.basis", FIGURES, default="records_provided")
    rate = c.fraction(doc, "rate", f"{at}.rate")
    per_unit = c.fraction(doc, "per_unit", f"{at}.per_unit", high=Fraction(10**9))
    if (rate is None) == (per_unit is None) and ("rate" in doc) == ("per_unit" in doc):
        c.add(at, "needs exactly one of rate and per_unit",
              "rate と per_unit のどちらか一方を指定してください")
        return None
    cap_rate = c.fraction(doc, "cap_rate", f"{at}.cap_rate")
    cap_yen = c.yen(doc, "cap_yen", f"{at}.cap_yen", required=False)
    cite = c.text(doc, "cite", f"{at}.cite", required=False, limit=500)
    if basis is None or (rate is None and per_unit is None):
        return None
    return Discount(basis, rate, per_unit, Fraction(1) if cap_rate is None else cap_rate,
                    cap_yen, cite)


def _population(value: Any, c: _Check, base_dir: Path | None) -> PopulationTable | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or \
            next(iter(value)) not in ("builtin", "csv", "values"):
        c.add("population", "must be one of {builtin: NAME}, {csv: FILE}, {values: {id: n}}",
              "{builtin: 名前}、{csv: ファイル}、{values: {ID: 人口}} のいずれかで指定してください")
        return None
    kind, arg = next(iter(value.items()))
    try:
        if kind == "builtin":
            if arg not in BUILTIN_POPULATION:
                c.add("population.builtin", f"must be one of {', '.join(BUILTIN_POPULATION)}",
                      f"次のいずれかを指定してください: {', '.join(BUILTIN_POPULATION)}")
                return None
            return builtin_population(arg)
        if kind == "csv":
            if base_dir is None:
                c.add("population.csv", "a CSV file cannot be used here; use builtin or values",
                      "ここではCSVファイルは使えません。builtin または values を指定してください")
                return None
            if not isinstance(arg, str):
                c.add("population.csv", "must be a file name", "ファイル名で指定してください")
                return None
            path = base_dir / arg
            return read_population_csv(path.read_bytes(), source=str(arg))
        if not isinstance(arg, dict) or not arg:
            c.add("population.values", "must be a mapping of participant id to population",
                  "参加者IDと人口のマッピングで指定してください")
            return None
        values = {}
        for pid, n in arg.items():
            if not _PID.match(str(pid)) or isinstance(n, bool) or not isinstance(n, int) or n < 0:
                c.add(f"population.values.{pid}", "must be a participant id with a whole number",
                      "参加者IDと0以上の整数で指定してください")
                continue
            values[str(pid)] = n
        return PopulationTable(values, "values in the rule file")
    except OSError as exc:
        c.add("population.csv", f"cannot read {arg}: {exc.strerror}", f"{arg} を読めません")
    except InvalidRequest as exc:
        c.add("population.csv", exc.message, exc.message_ja or exc.message)
    return None


def read_population_csv(data: bytes, *, source: str) -> PopulationTable:
    """A population table from CSV (UTF-8 with or without BOM, or Shift_JIS/CP932): a header
    row with ``code`` (or 団体コード), ``population`` (or 人口) and optionally ``name`` (or
    市区町村名); lines starting with ``#`` are comments and are kept as the source note."""
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InvalidRequest(f"{source}: not UTF-8 or Shift_JIS", code="invalid_population",
                             message_ja=f"{source}: UTF-8 または Shift_JIS で保存してください")
    notes = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("#")]
    rows = csv.DictReader(io.StringIO("\n".join(ln for ln in text.splitlines()
                                                if not ln.startswith("#"))))
    aliases = {"code": ("code", "団体コード"), "population": ("population", "人口"),
               "name": ("name", "市区町村名")}
    head = rows.fieldnames or []
    col = {k: next((h for h in head if h.strip() in names), None) for k, names in aliases.items()}
    if col["code"] is None or col["population"] is None:
        raise InvalidRequest(f"{source}: the header needs columns code and population",
                             code="invalid_population",
                             message_ja=f"{source}: 見出し行に code（団体コード）と "
                                        "population（人口）が必要です")
    values: dict[str, int] = {}
    names: dict[str, str] = {}
    for n, row in enumerate(rows, start=2):
        code = (row.get(col["code"]) or "").strip()
        raw = (row.get(col["population"]) or "").replace(",", "").strip()
        if not _PID.match(code) or not raw.isdigit():
            raise InvalidRequest(f"{source} line {n}: needs a 6-digit code and a whole population",
                                 code="invalid_population",
                                 message_ja=f"{source} の {n} 行目: 6桁の団体コードと人口（整数）が必要です")
        values[code] = int(raw)
        if col["name"]:
            names[code] = (row.get(col["name"]) or "").strip()
    if not values:
        raise InvalidRequest(f"{source}: no rows", code="invalid_population",
                             message_ja=f"{source}: データ行がありません")
    note = " ".join(notes)
    return PopulationTable(values, f"{source}: {note}" if note else source, names)


def builtin_population(name: str) -> PopulationTable:
    data = (resources.files("registry.billing") / BUILTIN_POPULATION[name]).read_bytes()
    return read_population_csv(data, source=name)

"""Usage policies (``mesh.policy``) in plain words, Japanese and English, for people choosing
data: 「研究目的に限り、兵庫県内の市区町村が利用できます。転送は最大 10 回まで。」

Each permission becomes one sentence (who may use the data, for what, when) followed by its
limits; several permissions are alternatives, numbered. Duties come last. The registry's catalog
portal shows these beside each offer and the connector's console reuses them. The words follow
docs/policies.md; they describe, the policy itself decides (``mesh.policy.evaluate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mesh.places import label, prefecture_name
from mesh.policy import Constraint, Duty, Permission, Policy, PolicyError, parse_policy

JST = ZoneInfo("Asia/Tokyo")
TYPE_NAMES = {"prefecture": ("都道府県", "prefectures"), "municipality": ("市区町村", "municipalities"),
              "private": ("民間事業者", "private companies"),
              "operator": ("運営組織", "the operating organisation")}
POSITIVE = ("eq", "isAnyOf")


@dataclass(frozen=True)
class PolicyText:
    """The whole policy as one text per language, and its parts: one line per permission
    (alternatives) and the duties (``""`` when there are none)."""

    ja: str
    en: str
    permissions_ja: tuple[str, ...]
    permissions_en: tuple[str, ...]
    duties_ja: str
    duties_en: str


def describe_offer(raw: Any, provider: str, names: Mapping[str, str] | None = None) -> PolicyText:
    """``describe_policy`` of an offer's policy JSON; an invalid one is said to be so."""
    try:
        policy = parse_policy(raw)
    except PolicyError as exc:
        ja, en = f"利用条件を読み取れません（{exc.message_ja}）", f"The policy cannot be read ({exc.message})"
        return PolicyText(ja, en, (ja,), (en,), "", "")
    return describe_policy(policy, provider, names)


def describe_policy(policy: Policy, provider: str, names: Mapping[str, str] | None = None
                    ) -> PolicyText:
    """``provider``: the publishing participant (what samePrefecture and sameMunicipality refer
    to); ``names``: participant id → name, for the local governments a policy names."""
    if not policy.permissions:
        lines_ja = ("この提供条件では誰も利用できません。",)
        lines_en = ("Nobody may use the data under this offer.",)
    else:
        texts = [_permission(p, provider, names or {}) for p in policy.permissions]
        lines_ja = tuple(t[0] for t in texts)
        lines_en = tuple(t[1] for t in texts)
    duties_ja, duties_en = _duties(policy.duties)
    if len(lines_ja) > 1:
        head_ja = "次のいずれかに当てはまれば利用できます。"
        head_en = "The data may be used under any one of these conditions."
        body_ja = head_ja + "".join(f"({i}) {line}" for i, line in enumerate(lines_ja, 1))
        body_en = head_en + " " + " ".join(f"({i}) {line}" for i, line in enumerate(lines_en, 1))
    else:
        body_ja, body_en = lines_ja[0], lines_en[0]
    return PolicyText("".join(filter(None, (body_ja, duties_ja))),
                      " ".join(filter(None, (body_en, duties_en))),
                      lines_ja, lines_en, duties_ja, duties_en)


def _values(c: Constraint) -> tuple[Any, ...]:
    return c.right_operand if isinstance(c.right_operand, tuple) else (c.right_operand,)


def _or(items: list[str], lang: str) -> str:
    if lang == "ja":
        return "または".join(items) if len(items) == 2 else "・".join(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _area(entry: str, provider: str, names: Mapping[str, str]) -> tuple[str, str]:
    if entry == "samePrefecture":
        ja, en = prefecture_name(provider, "ja"), prefecture_name(provider, "en")
        if ja and len(provider) == 6:
            return f"{ja}内", f"in {en}"
        return "提供者と同じ都道府県内（提供者は地方公共団体ではないため該当なし）", \
            "in the provider's prefecture (none: the provider is not a local government)"
    if entry == "sameMunicipality":
        return (f"提供者（{label(provider, names)}）自身",
                f"the provider itself ({label(provider, names, 'en')})")
    if len(entry) == 2:
        return f"{prefecture_name(entry, 'ja') or entry}内", f"in {prefecture_name(entry, 'en') or entry}"
    return label(entry, names), label(entry, names, "en")


def _participant(pid: str, names: Mapping[str, str], lang: str) -> str:
    """A participant by name and id; an unregistered company by its corporate number."""
    if pid in names or len(pid) != 13:
        return label(pid, names, lang)
    return f"法人番号 {pid} の事業者" if lang == "ja" else f"the company {pid}"


def _time(value: str) -> str:
    try:
        return datetime.fromisoformat(value).astimezone(JST).strftime("%Y-%m-%d %H:%M JST")
    except (TypeError, ValueError):
        return str(value)


def _permission(p: Permission, provider: str, names: Mapping[str, str]) -> tuple[str, str]:
    by: dict[str, list[Constraint]] = {}
    for c in p.constraints:
        by.setdefault(c.left_operand, []).append(c)
    if not p.constraints:
        return ("すべての参加者が目的を問わず利用できます。",
                "Every participant may use the data, for any purpose.")

    lead_ja, purpose_en = "", ""
    for c in by.get("purpose", []):
        vals = [str(v) for v in _values(c)]
        if c.operator in POSITIVE:
            lead_ja += (f"{vals[0]}目的に限り、" if len(vals) == 1 else f"{_or(vals, 'ja')}の目的に限り、")
            purpose_en += f" only for the purpose {_or(vals, 'en')}"
        else:
            lead_ja += f"{'・'.join(vals)}以外の目的で、"
            purpose_en += f" for purposes other than {', '.join(vals)}"

    places_ja, places_en, except_ja, except_en = [], [], [], []
    for c in by.get("spatial", []):
        described = [_area(str(v), provider, names) for v in _values(c)]
        if c.operator in POSITIVE:
            places_ja.append(_or([d[0] for d in described], "ja"))
            places_en.append(_or([d[1] for d in described], "en"))
        else:
            except_ja += [d[0] for d in described]
            except_en += [d[1] for d in described]
    nouns_ja, nouns_en = [], []
    for c in by.get("consumerType", []):
        vals = [TYPE_NAMES.get(str(v), (str(v), str(v))) for v in _values(c)]
        if c.operator in POSITIVE:
            nouns_ja.append("・".join(v[0] for v in vals))
            nouns_en.append(_or([v[1] for v in vals], "en"))
        else:
            except_ja += [v[0] for v in vals]
            except_en += [v[1] for v in vals]
    for c in by.get("consumerId", []):
        vals = [str(v) for v in _values(c)]
        if c.operator in POSITIVE:
            nouns_ja = ["・".join(_participant(v, names, "ja") for v in vals)]
            nouns_en = [_or([_participant(v, names, "en") for v in vals], "en")]
        else:
            except_ja += [_participant(v, names, "ja") for v in vals]
            except_en += [_participant(v, names, "en") for v in vals]
    if not nouns_ja:
        located = bool(places_ja) or any(c.operator in POSITIVE for c in by.get("spatial", []))
        nouns_ja = ["地方公共団体" if located else "すべての参加者"]
        nouns_en = ["local governments" if located else "every participant"]
    who_ja = "".join(f"{pl}の" for pl in places_ja) + nouns_ja[-1]
    who_en = nouns_en[-1] + "".join(f" {pl}" for pl in places_en)
    if except_ja:
        who_ja += f"（{'・'.join(except_ja)}を除く）"
        who_en += f" (except {', '.join(except_en)})"

    when_ja, when_en = [], []
    for c in sorted(by.get("dateTime", []), key=lambda c: c.operator in ("lt", "lteq")):
        at = _time(c.right_operand)
        ja_word, en_word = {"gteq": ("から", "from"), "gt": ("より後", "after"),
                            "lteq": ("まで", "until"), "lt": ("より前", "before")}[c.operator]
        when_ja.append(f"{at} {ja_word}")
        when_en.append(f"{en_word} {at}")
    ja = f"{lead_ja}{who_ja}が利用できます" + (f"（期間：{'、'.join(when_ja)}）" if when_ja else "") + "。"
    en = f"{who_en[0].upper()}{who_en[1:]} may use the data{purpose_en}" + \
        "".join(f" {w}" for w in when_en) + "."

    limits_ja, limits_en = [], []
    for c in by.get("transferCount", []):
        n = c.right_operand if c.operator == "lteq" else max(0, c.right_operand - 1)
        limits_ja.append(f"転送は最大 {n:,} 回まで")
        limits_en.append(f"at most {n:,} transfer{'s' if n != 1 else ''}")
    for c in by.get("recordCount", []):
        n = c.right_operand if c.operator == "lteq" else max(0, c.right_operand - 1)
        limits_ja.append(f"レコードは合計 {n:,} 件まで")
        limits_en.append(f"at most {n:,} record{'s' if n != 1 else ''} in all")
    if limits_ja:
        ja += "、".join(limits_ja) + "。"
        en += " " + "; ".join(limits_en).capitalize() + "."
    for c in by.get("mesh", []):
        vals = [str(v) for v in _values(c)]
        if c.operator in POSITIVE:
            ja += f"メッシュ {'・'.join(vals)} の参加者が利用できます（連携先メッシュを含む）。"
            en += f" Participants of mesh {_or(vals, 'en')} may use it (federated meshes included)."
        else:
            ja += f"メッシュ {'・'.join(vals)} の参加者は利用できません。"
            en += f" Participants of mesh {', '.join(vals)} may not use it."
    if any(c.right_operand is True for c in by.get("consent", [])):
        ja += "本人が同意した住民のレコードだけが提供されます"
        en += " Only the records of residents who consented are provided"
        levels = [_level(c) for c in by.get("identityAssurance", [])]
        if levels:
            ja += f"（本人確認レベル {max(levels)} 以上の住民に限ります）"
            en += f" (and only residents at identity assurance level {max(levels)} or higher)"
        ja += "。"
        en += "."
    return ja, en


def _level(c: Constraint) -> int:
    return int(c.right_operand) + (1 if c.operator == "gt" else 0)


def _span(duty: Duty) -> tuple[str, str] | None:
    within = duty.within
    if within is None:
        return None
    if within % timedelta(days=1) == timedelta(0):
        n = within.days
        return f"{n:,} 日", f"{n:,} day{'s' if n != 1 else ''}"
    hours = within / timedelta(hours=1)
    if hours == int(hours):
        return f"{int(hours):,} 時間", f"{int(hours):,} hour{'s' if hours != 1 else ''}"
    return str(within), str(within)


def _duties(duties: tuple[Duty, ...]) -> tuple[str, str]:
    items_ja, items_en = [], []
    for d in duties:
        span = _span(d)
        if d.action == "delete":
            items_ja.append(f"受け取ってから {span[0]}以内にデータを削除すること" if span
                            else "データを削除すること")
            items_en.append(f"delete the data within {span[1]} of receiving it" if span
                            else "delete the data")
        elif d.action == "reportUsage":
            items_ja.append("利用状況を報告すること" + (f"（{span[0]}以内）" if span else ""))
            items_en.append("report its use" + (f" within {span[1]}" if span else ""))
        elif d.action == "attribute":
            items_ja.append("出典を表示すること")
            items_en.append("credit the source")
        else:
            items_ja.append(d.action)
            items_en.append(d.action)
    if not items_ja:
        return "", ""
    return ("利用者の義務：" + "、".join(items_ja) + "。",
            "The consumer must " + (items_en[0] if len(items_en) == 1 else
                                    ", ".join(items_en[:-1]) + " and " + items_en[-1]) + ".")

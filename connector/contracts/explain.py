"""Why an agreement ended, in plain words (Japanese first, then English).

One function, :func:`explain`, reads a stored ``AgreementRow`` and says which constraint of the
offer's policy failed on which claim of the request, or which party ended the agreement, when,
for what reason and with what message. The console's agreement page and
``areamesh connector contract explain ID`` both show its result, so they never disagree.

Terminations are recorded in two shapes (``contracts.db``, ``reason_json``):
- a refusal at negotiation (``{"reason": "policy", "decision": {...}}``, negotiation.py): the
  provider judged the request against the offer's policy; ``decision.failures`` lists each
  constraint that did not hold, with the claim's actual value (``mesh.policy``);
- a termination by either party (``{"reason": "terminated", "code", "by", "at", ...}``,
  termination.py), with its reason code, free text and whether the counterparty was told.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from connector.contracts.store import AgreementRow
from connector.contracts.termination import REASON_CODES

JST = ZoneInfo("Asia/Tokyo")
REASON_EN = {
    "no_longer_needed": "no longer needed", "purpose_fulfilled": "purpose fulfilled",
    "policy_violation": "policy violation", "duty_not_fulfilled": "a duty not fulfilled",
    "dataset_withdrawn": "dataset withdrawn", "security_incident": "security incident",
    "consent_withdrawn": "consent withdrawn", "other": "other",
}
# leftOperand → the claim of the request it is judged on, and where that claim comes from
CLAIMS: dict[str | None, tuple[str, str]] = {
    "purpose": ("申込みで申告された利用目的", "the purpose declared in the request"),
    "consumerType": ("利用者の種別（レジストリの参加者情報）",
                     "the consumer's type (its participant record at the registry)"),
    "consumerId": ("利用者のID（mTLS証明書）", "the consumer's id (from its mTLS certificate)"),
    "spatial": ("利用者の地域（証明書の団体コード）",
                "the consumer's area (the local government code in its certificate)"),
    "dateTime": ("申込みの日時", "the time of the request"),
    "transferCount": ("この合意での転送回数", "the transfers under this agreement"),
    "recordCount": ("この合意でのレコード数", "the records under this agreement"),
    "identityAssurance": ("本人確認レベル", "the identity assurance level"),
    "mesh": ("利用者のメッシュ（証明書の発行元認証局）",
             "the consumer's mesh (the CA that issued its certificate)"),
    None: ("利用条件（ポリシー）全体", "the policy as a whole"),
}


@dataclass(frozen=True)
class Failure:
    """One constraint of the policy that did not hold, and the claim it was judged on."""

    path: str                 # where in the policy: permissions[0].constraints[1]
    constraint: str           # the constraint as written: purpose eq 研究
    claim_ja: str
    claim_en: str
    actual: Any               # the claim's value (None: not declared)
    message_ja: str
    message_en: str


@dataclass(frozen=True)
class Explanation:
    agreement_id: str
    state: str
    kind: str                 # refused | terminated | unrecorded | not_terminated
    by: str = ""              # node identity URI of the party that ended it
    by_self: bool = False     # that party is this connector
    at: str = ""              # ISO 8601 time it ended
    code: str = ""            # the termination's reason code
    label_ja: str = ""
    label_en: str = ""
    message: str = ""         # the terminating party's own words
    notified: bool | None = None
    notify_error: str = ""
    failures: tuple[Failure, ...] = field(default=())

    @property
    def ended(self) -> bool:
        return self.kind != "not_terminated"

    def lines(self, lang: str) -> list[str]:
        """The explanation as sentences in ``lang`` (ja or en): the summary, then the details."""
        ja = lang == "ja"
        when = jst(self.at)
        who = (f"このコネクタ（{self.by}）" if self.by_self else f"相手方（{self.by}）") if ja else \
            (f"this connector ({self.by})" if self.by_self else f"the counterparty ({self.by})")
        if self.kind == "not_terminated":
            return [f"この合意は終了していません（状態: {self.state}）。" if ja else
                    f"This agreement has not ended (state: {self.state})."]
        if self.kind == "unrecorded":
            return ["この合意は終了していますが、理由は記録されていません。" if ja else
                    "This agreement has ended, but no reason was recorded."]
        if self.kind == "refused":
            out = [f"提供者である{who}が {when} に申込みを断りました。利用条件（ポリシー）の"
                   f"次の制約を満たしていません。" if ja else
                   f"The provider, {who}, refused the request at {when}: it does not meet "
                   "these constraints of the usage policy."]
            for f in self.failures:
                shown = ("（申告なし）" if ja else "(not declared)") if f.actual is None \
                    else _show(f.actual, ja)
                out.append(f"- 制約 {f.path}「{f.constraint}」: {f.claim_ja}は{shown}。"
                           f"{f.message_ja}" if ja else
                           f"- constraint {f.path} \"{f.constraint}\": {f.claim_en} is {shown}; "
                           f"{f.message_en}")
            return out
        out = [f"{who}が {when} に合意を終了しました。理由: {self.label_ja}（{self.code}）。" if ja else
               f"{_cap(who)} ended the agreement at {when}. Reason: {self.label_en} ({self.code})."]
        if self.message:
            out.append(f"終了した側の説明: {self.message}" if ja else
                       f"In the terminating party's words: {self.message}")
        if self.notified is False:
            out.append(f"相手方には通知できませんでした: {self.notify_error}" if ja else
                       f"The counterparty could not be told: {self.notify_error}")
        elif self.notified:
            out.append("相手方にも通知しました。" if ja else "The counterparty was told.")
        return out

    def text(self) -> str:
        """Japanese first, then English: what ``contract explain`` prints."""
        return "\n".join([*self.lines("ja"), "", *self.lines("en")])

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ja": self.lines("ja"), "en": self.lines("en")}


def jst(value: str) -> str:
    """An ISO 8601 time as 2026-12-03 21:17 JST (as the console shows times)."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value or "—"
    return moment.astimezone(JST).strftime("%Y-%m-%d %H:%M JST") if moment.tzinfo else value


def _show(value: Any, ja: bool) -> str:
    if isinstance(value, str):
        return f"「{value}」" if ja else f"'{value}'"
    return json.dumps(value, ensure_ascii=False)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _constraint(f: dict[str, Any]) -> str:
    if not f.get("leftOperand"):
        return f.get("path", "")
    expected = f.get("expected")
    right = "、".join(map(str, expected)) if isinstance(expected, list) else str(expected)
    return f"{f['leftOperand']} {f.get('operator', '')} {right}"


def explain(row: AgreementRow, own_identity: str) -> Explanation:
    """Why ``row`` ended; ``own_identity`` is this connector's node identity URI."""
    if row.state != "TERMINATED":
        return Explanation(row.id, row.state, "not_terminated")
    reason = row.reason or {}
    if reason.get("reason") == "policy":
        by = own_identity if row.role == "provider" else row.counterparty
        failures = tuple(
            Failure(str(f.get("path", "")), _constraint(f),
                    *CLAIMS.get(f.get("leftOperand"), (str(f.get("leftOperand")),) * 2),
                    f.get("actual"), str(f.get("message_ja") or f.get("message", "")),
                    str(f.get("message", "")))
            for f in (reason.get("decision") or {}).get("failures", []) if isinstance(f, dict))
        return Explanation(row.id, row.state, "refused", by, by == own_identity, row.updated_at,
                           failures=failures)
    if reason.get("reason") == "terminated":
        code = str(reason.get("code", "other"))
        by = str(reason.get("by", ""))
        return Explanation(row.id, row.state, "terminated", by, by == own_identity,
                           str(reason.get("at") or row.updated_at), code,
                           REASON_CODES.get(code, code), REASON_EN.get(code, code),
                           str(reason.get("message", "")), reason.get("counterparty_notified"),
                           str(reason.get("notify_error", "")))
    return Explanation(row.id, row.state, "unrecorded", at=row.updated_at)

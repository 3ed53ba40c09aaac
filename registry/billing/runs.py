"""Billing runs kept in ``registry.db``: one per period, with the rules' digest and text and the
results, so the console and the API show what was billed. Running a period again replaces its
run; the audit log (action ``billing.run``) records every run, and a replacement names the
digest and time of the run it replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import NotFound
from registry.billing.figures import FiguresSource, default_source
from registry.billing.rules import BillingRules
from registry.billing.statements import compute, select_participants
from registry.metering.usage import parse_period
from registry.operators.admin import AdminService
from registry.operators.audit_log import Actor


@dataclass(frozen=True)
class RunInfo:
    period: str
    title: str
    rules_digest: str
    total: int
    participants: int
    run_at: str
    run_by: str

    def to_json(self) -> dict[str, Any]:
        return {"period": self.period, "title": self.title, "rules_digest": self.rules_digest,
                "total": self.total, "participants": self.participants, "run_at": self.run_at,
                "run_by": self.run_by}


def _info(r) -> RunInfo:
    return RunInfo(r["period"], r["title"], r["rules_digest"], r["total"], r["participants"],
                   r["run_at"], r["run_by"])


class BillingRuns:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self) -> list[RunInfo]:
        """Newest period first."""
        rows = await self.db.fetchall(
            "SELECT period, title, rules_digest, total, participants, run_at, run_by "
            "FROM billing_runs ORDER BY period DESC")
        return [_info(r) for r in rows]

    async def info(self, period: str) -> RunInfo | None:
        r = await self.db.fetchone(
            "SELECT period, title, rules_digest, total, participants, run_at, run_by "
            "FROM billing_runs WHERE period = ?", (period,))
        return _info(r) if r else None

    async def get(self, period: str) -> dict[str, Any]:
        """The stored run as ``statements.compute`` made it, with ``run_at``, ``run_by`` and
        the rule file's text; NotFound when the period was never run."""
        r = await self.db.fetchone("SELECT * FROM billing_runs WHERE period = ?", (period,))
        if r is None:
            raise NotFound(f"no billing run for period {period}", code="billing_run_not_found",
                           message_ja=f"期間 {period} の費用按分はまだ実行されていません")
        return {**json.loads(r["result"]), "run_at": r["run_at"], "run_by": r["run_by"],
                "rules_text": r["rules_text"]}

    async def store(self, result: dict[str, Any], rules: BillingRules, run_by: str) -> None:
        """Insert or replace the period's run (one statement: either replica may run it)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO billing_runs(period, title, rules_digest, rules_text, total, "
                "participants, result, run_at, run_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (period) DO UPDATE SET title = excluded.title, "
                "rules_digest = excluded.rules_digest, rules_text = excluded.rules_text, "
                "total = excluded.total, participants = excluded.participants, "
                "result = excluded.result, run_at = excluded.run_at, run_by = excluded.run_by",
                (result["period"], result["title"], rules.digest, rules.text,
                 result["totals"]["amount"], result["totals"]["participants"],
                 json.dumps(result, ensure_ascii=False), iso(utcnow()), run_by))


async def run_billing(admin: AdminService, actor: Actor, rules: BillingRules, period: str,
                      source: FiguresSource | None = None) -> dict[str, Any]:
    """Compute the period's statements from the register and the metered figures, store them
    (replacing an earlier run of the period) and record the run in the audit log."""
    parsed = parse_period(period)
    runs = BillingRuns(admin.store.db)
    before = await runs.info(parsed.label)
    details: dict[str, Any] = {"rules_digest": rules.digest, "title": rules.title,
                               "replaced": None if before is None else
                               {"rules_digest": before.rules_digest, "run_at": before.run_at,
                                "total": before.total}}

    async def act() -> dict[str, Any]:
        register = await admin.store.participants()
        pids = select_participants(rules, register)
        figures = await (source or default_source())(admin.store.db, parsed)
        names = {p.id: p.name for p in register}
        result = compute(rules, parsed.label, pids, names, figures)
        await runs.store(result, rules, actor.name)
        details["total"] = result["totals"]["amount"]
        return result

    return await admin.run(actor, "billing.run", parsed.label, details, act)

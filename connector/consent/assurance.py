"""ResidentAssurance: identity assurance per record of a personal-data transfer (5-10).

An offer on personal data may say ``identityAssurance gteq 2`` beside ``consent eq true``. Then a
resident's records go to another platform only when the resident's id on this platform *and* the
same person's id on the receiving platform both have levels that meet it (the lower of 身元確認
and 当人認証, as ``mesh.policy.residents_levels_meet`` decides). A resident the identity service
has never linked to an id on the receiving platform has no level there, and stays home.

The levels come from the registry's identity service (``CheckTransferLevels``), asked once per
batch for the residents the consent filter kept, so a link, unlink or elevation reaches the next
batch as a withdrawal does. Nothing is cached across batches; a registry that cannot answer stops
the transfer (fail closed) rather than sending records it could not check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connector.consent.filter import FilteredBatch
from mesh.policy import Constraint, residents_levels_meet

MAX_PER_CALL = 100_000   # what the identity service accepts per CheckTransferLevels call

# (target platform, local ids) -> one answer per id with source_known, source_ial, source_aal,
# linked, target_ial, target_aal (identity_pb2.TransferLevels)
LevelsLookup = Callable[[str, list[str]], Awaitable[Sequence[Any]]]


@dataclass(frozen=True)
class ResidentAssurance:
    constraints: tuple[Constraint, ...]
    target_platform: str
    lookup: LevelsLookup

    async def allowed(self, subjects: Sequence[str]) -> frozenset[str]:
        """Those of ``subjects`` whose ids on both platforms meet every constraint."""
        ok: set[str] = set()
        subjects = list(subjects)
        for start in range(0, len(subjects), MAX_PER_CALL):
            part = subjects[start:start + MAX_PER_CALL]
            answers = await self.lookup(self.target_platform, part)
            if len(answers) != len(part):
                raise RuntimeError(f"the identity service answered {len(answers)} of {len(part)} ids")
            ok.update(s for s, a in zip(part, answers, strict=True) if self._meets(a))
        return frozenset(ok)

    def _meets(self, a: Any) -> bool:
        return (a.source_known and a.linked
                and residents_levels_meet(self.constraints, (a.source_ial, a.source_aal))
                and residents_levels_meet(self.constraints, (a.target_ial, a.target_aal)))

    async def narrow(self, filtered: FilteredBatch, subject_column: str) -> FilteredBatch:
        """``filtered`` (the consent filter's output) without the residents who fall short."""
        if filtered.batch.num_rows == 0:
            return filtered
        subjects = filtered.subject_ids
        allowed = await self.allowed(subjects.to_pylist())
        if len(allowed) == len(subjects):
            return filtered
        value_set = pa.array(sorted(allowed), pa.string())
        column = filtered.batch.column(subject_column)
        keep = pc.fill_null(pc.is_in(column.cast(pa.string()), value_set=value_set), False)
        batch = filtered.batch.filter(keep)
        kept = pc.is_in(subjects, value_set=value_set)
        counts = filtered.counts[kept.to_numpy(zero_copy_only=False)]
        return FilteredBatch(batch, subjects.filter(kept), counts,
                             filtered.dropped + filtered.batch.num_rows - batch.num_rows)

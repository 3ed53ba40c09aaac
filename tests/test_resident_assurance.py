"""ResidentAssurance: per-record identity assurance (5-10) against a stand-in identity service."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from connector.consent import assurance as assurance_module
from connector.consent.assurance import ResidentAssurance
from mesh.policy import evaluate, parse_policy

from .test_policy import ctx


def level(source=None, target=None):
    """An identity-service answer: ``source``/``target`` are (ial, aal) or None (unknown/unlinked)."""
    s, t = source or (0, 0), target or (0, 0)
    return SimpleNamespace(source_known=source is not None, source_ial=s[0], source_aal=s[1],
                           linked=target is not None, target_ial=t[0], target_aal=t[1])


def constraints(op: str, n: int):
    policy = parse_policy({"permissions": [{"action": "use", "constraints": [
        {"leftOperand": "identityAssurance", "operator": op, "rightOperand": n},
        {"leftOperand": "consent", "operator": "eq", "rightOperand": True}]}]})
    return evaluate(policy, ctx()).record_assurance


async def test_both_platforms_must_meet_the_minimum():
    answers = {"A": level((2, 2), (2, 3)), "B": level((3, 3), (1, 3)), "C": level((1, 3), (3, 3)),
               "D": level((3, 3), None), "E": level(None, None), "F": level((2, 2), (2, 2))}
    asked: list[tuple[str, list[str]]] = []

    async def lookup(target: str, ids: list[str]):
        asked.append((target, ids))
        return [answers[i] for i in ids]

    check = ResidentAssurance(constraints("gteq", 2), "270008", lookup)
    assert await check.allowed(list(answers)) == {"A", "F"}
    assert asked == [("270008", list(answers))]
    exact = ResidentAssurance(constraints("eq", 3), "270008", lookup)
    assert await exact.allowed(list(answers)) == frozenset()


async def test_large_batches_are_asked_in_parts(monkeypatch):
    monkeypatch.setattr(assurance_module, "MAX_PER_CALL", 3)
    sizes: list[int] = []

    async def lookup(target: str, ids: list[str]):
        sizes.append(len(ids))
        return [level((3, 3), (3, 3)) for _ in ids]

    ids = [f"R{i}" for i in range(8)]
    assert await ResidentAssurance(constraints("gteq", 3), "270008", lookup).allowed(ids) == set(ids)
    assert sizes == [3, 3, 2]


async def test_a_short_answer_fails_closed():
    async def lookup(target: str, ids: list[str]):
        return [level((3, 3), (3, 3))]

    with pytest.raises(RuntimeError, match="answered 1 of 2"):
        await ResidentAssurance(constraints("gteq", 1), "270008", lookup).allowed(["R1", "R2"])


async def test_narrow_drops_the_records_and_ledger_counts_of_residents_who_fall_short():
    import pyarrow as pa

    from connector.consent.filter import FilteredBatch

    async def lookup(target: str, ids: list[str]):
        return [level((2, 2), (2, 2)) if i != "B" else level((2, 2), (1, 1)) for i in ids]

    import numpy as np

    batch = pa.record_batch({"id": ["A", "B", "A", "C", "B"], "v": [1, 2, 3, 4, 5]})
    filtered = FilteredBatch(batch, pa.array(["A", "B", "C"]), np.array([2, 2, 1]), dropped=3)
    check = ResidentAssurance(constraints("gteq", 2), "270008", lookup)
    out = await check.narrow(filtered, "id")
    assert out.batch.to_pydict() == {"id": ["A", "A", "C"], "v": [1, 3, 4]}
    assert (out.subjects, out.records, out.dropped) == (["A", "C"], [2, 1], 5)
    everyone = ResidentAssurance(constraints("gteq", 1), "270008", lookup)
    assert await everyone.narrow(filtered, "id") is filtered

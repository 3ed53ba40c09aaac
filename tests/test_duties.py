"""How a duty's state follows from its agreement, the transfers under it and the confirmations
(``connector/contracts/duties.py``); the processes around it are in tests/security/test_contract_terms.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.contracts.duties import derive
from mesh.clock import iso
from mesh.policy import parse_policy

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def _duty(within: str | None = "P90D", action: str = "delete"):
    limit = {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": within}
    constraints = [limit] if within else []
    return parse_policy({"permissions": [{"action": "use"}], "duties": [
        {"action": action, "constraints": constraints}]}).duties[0]


def at(days: float) -> str:
    return iso(T0 + timedelta(days=days))


def test_no_data_yet_is_pending_without_a_due_time():
    assert derive(_duty(), data_times=[], confirmed_at=None, expires=None, now=T0) == ("pending", None, None)


def test_due_runs_from_the_first_transfer_and_falls_overdue():
    times = [at(5), at(1)]
    assert derive(_duty(), data_times=times, confirmed_at=None, expires=None, now=T0 + timedelta(days=90)) \
        == ("pending", at(1), at(91))
    assert derive(_duty(), data_times=times, confirmed_at=None, expires=None,
                  now=T0 + timedelta(days=91))[0] == "overdue"


def test_a_confirmation_covers_earlier_transfers_and_a_later_one_opens_the_duty_again():
    assert derive(_duty(), data_times=[at(1)], confirmed_at=at(2), expires=None,
                  now=T0 + timedelta(days=400)) == ("fulfilled", None, None)
    state, since, due = derive(_duty(), data_times=[at(1), at(3)], confirmed_at=at(2), expires=None,
                               now=T0 + timedelta(days=10))
    assert (state, since, due) == ("pending", at(3), at(93))


def test_without_elapsed_time_the_agreement_expiry_is_the_deadline_or_there_is_none():
    duty = _duty(None, "attribute")
    assert derive(duty, data_times=[at(1)], confirmed_at=None, expires=None,
                  now=T0 + timedelta(days=9999)) == ("pending", at(1), None)
    assert derive(duty, data_times=[at(1)], confirmed_at=None, expires=at(30),
                  now=T0 + timedelta(days=31)) == ("overdue", at(1), at(30))

"""The relay's pure choices: which due sends start now (room, and a cap per recipient so that one slow receiver
cannot take every slot), and the backoff between rounds of a failing delivery."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from aggregator.relay import RelaySettings, backoff, pick

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Send:
    delivery_id: int
    recipient: str


def test_one_recipient_never_takes_more_than_its_share_of_the_slots() -> None:
    due = [Send(i, "provider:slow-bank") for i in range(10)] + [Send(10, "borrower:b1"), Send(11, "provider:ok")]
    chosen = pick(due, {"provider:slow-bank": 1}, room=8, per_recipient=4)
    assert [s.delivery_id for s in chosen] == [0, 1, 2, 10, 11]
    assert pick(due, {}, room=2, per_recipient=4) == due[:2]
    assert pick(due, {"provider:slow-bank": 4}, room=8, per_recipient=4) == due[10:]


def test_the_backoff_doubles_per_failed_round_up_to_its_cap() -> None:
    settings = RelaySettings(first_backoff=2.0, max_backoff=30.0)
    assert [backoff(settings, rounds) for rounds in (1, 2, 3, 4, 5, 9)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]

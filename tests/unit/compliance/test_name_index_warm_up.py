"""The sanctions name index is built at start-up (api.sanctions_reload.warm_name_index, run in a worker thread by
the app's lifespan), not by the first credit request; the warmed screen screens as a cold one does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.sanctions_reload import warm_name_index
from compliance import ComplianceService
from compliance.jurisdiction import load_rules
from compliance.sanctions.lists import NameList, load_newest
from compliance.sanctions.screening import SanctionsScreen

pytestmark = pytest.mark.unit


def _service() -> ComplianceService:
    addresses, names = load_newest()
    some = NameList(names.version, names.names[:300])  # a slice: the whole list's index takes seconds
    return ComplianceService(
        SanctionsScreen(addresses, some), load_rules(), clock=lambda: datetime.now(UTC), inputs_key=bytes(32)
    )


def test_warm_up_builds_the_index_and_screens_the_same() -> None:
    warm, cold = _service(), _service()
    assert not warm.screen.name_index_built
    warm_name_index(warm)
    assert warm.screen.name_index_built
    assert not cold.screen.name_index_built
    listed = warm.screen.names.names[7].name
    now = warm.screen.names.version.published
    assert warm.screen.screen_name(listed, now) == cold.screen.screen_name(listed, now)
    assert warm.screen.screen_name(listed, now), "a listed name is found"

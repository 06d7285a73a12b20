"""Fixtures for the compliance unit tests: the shipped lists, parsed once per session."""

from __future__ import annotations

import pytest

from compliance.sanctions.lists import AddressList, NameList, load_newest
from compliance.sanctions.screening import SanctionsScreen


@pytest.fixture(scope="session")
def shipped_lists() -> tuple[AddressList, NameList]:
    return load_newest()


@pytest.fixture(scope="session")
def name_list(shipped_lists: tuple[AddressList, NameList]) -> NameList:
    return shipped_lists[1]


@pytest.fixture(scope="session")
def screen(shipped_lists: tuple[AddressList, NameList]) -> SanctionsScreen:
    return SanctionsScreen(*shipped_lists)

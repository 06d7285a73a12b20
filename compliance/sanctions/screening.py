"""Screening against the loaded lists, failing closed when a list is older than its maximum age.

Pure: the lists and the current time are passed in; nothing here reads a file or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from compliance.errors import ComplianceInputError, SanctionsListStale
from compliance.sanctions.lists import AddressEntry, AddressList, ListVersion, NameList
from compliance.sanctions.names import NameIndex

# Chosen on the selection half of the labelled sample (tests/unit/compliance/test_name_matching.py re-derives it).
NAME_MATCH_THRESHOLD = 87.0


@dataclass(frozen=True)
class SanctionsPolicy:
    """Maximum list ages. The defaults let the shipped files (addresses of 2026-08-20, names of 2024-05-03) work
    for local runs; production sets them to days (CREDITMESH_SANCTIONS_*_MAX_AGE_DAYS)."""

    address_list_max_age: timedelta = timedelta(days=365)
    name_list_max_age: timedelta = timedelta(days=365 * 4)
    name_threshold: float = NAME_MATCH_THRESHOLD


@dataclass(frozen=True)
class AddressHit:
    address: str
    entries: tuple[AddressEntry, ...]


@dataclass(frozen=True)
class NameHit:
    query: str
    listed_name: str
    primary_name: str
    ent_num: int
    program: str
    score: float


def normalize_evm_address(address: str) -> str:
    """Lower-case 0x hex of any EVM address form (lower, upper, EIP-55 checksum); refuses anything else."""
    text = address.strip()
    if len(text) != 42 or text[:2].lower() != "0x":
        raise ComplianceInputError(f"not an EVM address: {address!r}")
    body = text[2:].lower()
    if any(ch not in "0123456789abcdef" for ch in body):
        raise ComplianceInputError(f"not an EVM address: {address!r}")
    return "0x" + body


class SanctionsScreen:
    """The two lists, indexed once per loaded version."""

    def __init__(self, addresses: AddressList, names: NameList, policy: SanctionsPolicy | None = None) -> None:
        self.addresses = addresses
        self.names = names
        self.policy = policy or SanctionsPolicy()
        self._index = NameIndex([n.name for n in names.names])

    @property
    def versions(self) -> dict[str, str]:
        return {
            self.addresses.version.name: self.addresses.version.label,
            self.names.version.name: self.names.version.label,
        }

    def _fresh(self, version: ListVersion, max_age: timedelta, now: datetime) -> None:
        if now - version.published > max_age:
            raise SanctionsListStale(version.name, version.label, version.published, max_age.days, now)

    def screen_address(self, address: str, now: datetime) -> AddressHit | None:
        """The listing of ``address`` if it is sanctioned, else None.

        Raises:
            SanctionsListStale: the address list is older than its maximum age at ``now``.
            ComplianceInputError: ``address`` is not an EVM address.
        """
        self._fresh(self.addresses.version, self.policy.address_list_max_age, now)
        lower = normalize_evm_address(address)
        entries = self.addresses.lookup(lower)
        return AddressHit(lower, entries) if entries else None

    def screen_name(self, name: str, now: datetime, limit: int = 5) -> list[NameHit]:
        """Listed names (and aliases) scoring at least the threshold against ``name``, best first.

        Raises:
            SanctionsListStale: the name list is older than its maximum age at ``now``.
        """
        self._fresh(self.names.version, self.policy.name_list_max_age, now)
        if not name.strip():
            raise ComplianceInputError("an empty name cannot be screened")
        hits = []
        for candidate in self._index.search(name, self.policy.name_threshold, limit):
            listed = self.names.names[candidate.index]
            hits.append(
                NameHit(
                    name, listed.name, listed.alias_of or listed.name, listed.ent_num, listed.program, candidate.score
                )
            )
        return hits

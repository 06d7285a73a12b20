"""Screening against the loaded lists, failing closed when a list is older than its maximum age.

Pure: the lists and the current time are passed in; nothing here reads a file or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property

from compliance.errors import ComplianceInputError, SanctionsListStale
from compliance.sanctions.lists import AddressEntry, AddressList, ListedName, ListVersion, NameList
from compliance.sanctions.name_cache import CacheKey, NameScreenCache
from compliance.sanctions.names import NameIndex, spelling_key

# Chosen on the tuning half of the labelled evaluation set (tests/unit/compliance/test_name_matching.py re-derives
# it; bench/name_screening.py reports the held-out half). A score at or above it is a possible match, held for review;
# a near-exact full name is a match.
NAME_MATCH_THRESHOLD = 72.0


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
    near_exact: bool = False  # every part of a listed full name given, spelt the same or sounding the same: a match
    why: str = ""  # which parts paired and how well (mentions the query's parts: personal data)
    entry_fingerprint: str = ""  # changes when the SDN entry changes (a review is for one version of the entry)


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
    """The two lists, indexed once per loaded version. Name results are cached by (normalised name, list version)
    in ``name_cache`` (bounded; pass one cache to the screens of successive list versions to share its bound)."""

    def __init__(
        self,
        addresses: AddressList,
        names: NameList,
        policy: SanctionsPolicy | None = None,
        name_cache: NameScreenCache[tuple[NameHit, ...]] | None = None,
    ) -> None:
        self.addresses = addresses
        self.names = names
        self.policy = policy or SanctionsPolicy()
        self.name_cache: NameScreenCache[tuple[NameHit, ...]] = (
            name_cache if name_cache is not None else NameScreenCache()
        )
        self._positions: dict[int, list[int]] = {}
        for position, listed in enumerate(names.names):
            self._positions.setdefault(listed.ent_num, []).append(position)

    def with_names(self, names: NameList) -> SanctionsScreen:
        """A screen of ``names`` with this one's address list, policy and result cache (results are keyed by the
        list version, so the old version's entries simply age out of the cache's bound)."""
        return SanctionsScreen(self.addresses, names, self.policy, self.name_cache)

    def with_addresses(self, addresses: AddressList) -> SanctionsScreen:
        """A screen of ``addresses`` with this one's names, policy, result cache and name index (built or not)."""
        screen = SanctionsScreen(addresses, self.names, self.policy, self.name_cache)
        if "_index" in self.__dict__:  # the names did not change: their index (seconds of CPU) is not built again
            screen.__dict__["_index"] = self.__dict__["_index"]
        return screen

    @cached_property
    def _index(self) -> NameIndex:
        """Built on first use (about a second for the SDN list): a screen that only checks addresses, or whose list
        is stale, never pays for it."""
        names = self.names.names
        return NameIndex([n.name for n in names], [n.sdn_type == "individual" for n in names])

    @property
    def name_index(self) -> NameIndex:
        return self._index

    @property
    def name_index_built(self) -> bool:
        """Whether the name index is built (``api.sanctions_reload.warm_name_index`` builds it at start-up)."""
        return "_index" in self.__dict__

    @property
    def name_list_version(self) -> str:
        """The loaded name list's label: a cache of name screens keys on it with the normalised name
        (``compliance.sanctions.names.spelling_key``)."""
        return self.names.version.label

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
        hits = self.name_cache.get_or_screen(self._name_key(name, now, limit), lambda: self._search_name(name, limit))
        return [replace(hit, query=name) for hit in hits]

    def cached_name_hits(self, name: str, now: datetime, limit: int = 5) -> list[NameHit] | None:
        """``screen_name``'s answer when the name's screening is cached (no search: cheap enough for an event loop),
        else None. Raises as ``screen_name`` raises."""
        hits = self.name_cache.get(self._name_key(name, now, limit))
        return None if hits is None else [replace(hit, query=name) for hit in hits]

    def _name_key(self, name: str, now: datetime, limit: int) -> CacheKey:
        self._fresh(self.names.version, self.policy.name_list_max_age, now)
        if not name.strip():
            raise ComplianceInputError("an empty name cannot be screened")
        # The matcher sees a name only through its spelling key, so names with one key are screened alike.
        return (spelling_key(name), self.name_list_version, self.policy.name_threshold, limit)

    def _search_name(self, name: str, limit: int) -> tuple[NameHit, ...]:
        """The uncached search behind ``screen_name``."""
        hits: list[NameHit] = []
        seen: set[int] = set()
        for candidate in self._index.search(name, self.policy.name_threshold, limit * 4):
            listed = self.names.names[candidate.index]
            if listed.ent_num in seen or len(seen) >= limit:  # one hit per SDN entry, its best name
                continue
            seen.add(listed.ent_num)
            hits.append(
                NameHit(
                    name,
                    listed.name,
                    listed.alias_of or listed.name,
                    listed.ent_num,
                    listed.program,
                    candidate.score,
                    candidate.near_exact,
                    candidate.why,
                    self.names.entry_fingerprint(listed.ent_num),
                )
            )
        return tuple(hits)

    def entry(self, ent_num: int) -> tuple[ListedName, ...]:
        """Every listed name (primary and aliases) of one SDN entry."""
        return self.names.entry(ent_num)

    def explain(self, name: str, ent_num: int) -> NameHit | None:
        """The best pairing of ``name`` with any name of entry ``ent_num`` (a reviewer's evidence), or None."""
        best: NameHit | None = None
        for position in self._positions.get(ent_num, ()):
            listed = self.names.names[position]
            pairing = self._index.pair(name, position)
            if best is None or pairing.score > best.score:
                best = NameHit(
                    name,
                    listed.name,
                    listed.alias_of or listed.name,
                    ent_num,
                    listed.program,
                    pairing.score,
                    pairing.near_exact,
                    pairing.why(),
                    self.names.entry_fingerprint(ent_num),
                )
        return best

"""Whom a borrower or provider API key may act for, checked the same by ``POST /v1/api-keys`` (the running platform's
provider registry) and ``creditmesh keys issue`` (the providers as the settings, deployment records and stored
registrations make them, ``providers.assembly.provider_ids``): a registered borrower; a provider the platform knows
and has not deregistered."""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass

from api.auth import ApiKeyError, Role


class UnknownSubject(ApiKeyError):
    """The borrower or provider a key would act for is not registered (a 404)."""


@dataclass(frozen=True, slots=True)
class KeySubjects:
    """Who is there to act for: whether a borrower id is registered, the providers known (deregistered ones among
    them), and whether one was deregistered."""

    borrower_exists: Callable[[str], bool]
    providers: Container[str]
    deregistered: Callable[[str], bool]


def check_subject(subjects: KeySubjects, role: Role, subject_id: str | None) -> None:
    """Raise ``UnknownSubject`` when ``subject_id`` names no registered borrower (a borrower key) or no provider, or a
    deregistered one (a provider key: its keys were revoked with the deregistration, a new one comes with registering
    it again). A key that names no subject is ``auth.issue``'s to refuse or take."""
    if subject_id is None:
        return
    if role is Role.BORROWER and not subjects.borrower_exists(subject_id):
        raise UnknownSubject(f"no borrower {subject_id!r}")
    if role is Role.PROVIDER and subject_id not in subjects.providers:
        raise UnknownSubject(f"no provider {subject_id!r}")
    if role is Role.PROVIDER and subjects.deregistered(subject_id):
        raise UnknownSubject(f"provider {subject_id!r} was deregistered: register it again (POST /v1/providers)")

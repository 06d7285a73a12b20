"""Sealing a value asks the key store once when the subject's key exists (every screening of a known borrower seals
its name) and creates the key on first use; an erased subject's new value gets a new key, as before."""

from __future__ import annotations

import pytest

from compliance.pii import InMemoryKeyProvider, PiiVault

pytestmark = pytest.mark.unit


class _Counted(InMemoryKeyProvider):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def create_key(self, subject_id: str) -> None:
        self.calls.append("create")
        super().create_key(subject_id)

    def data_key(self, subject_id: str) -> bytes:
        self.calls.append("read")
        return super().data_key(subject_id)


def test_a_known_subject_s_key_is_read_once_a_new_one_created_first() -> None:
    keys = _Counted()
    vault = PiiVault(keys)
    first = vault.encrypt("b-1", "name", "Ada Lovelace")
    assert keys.calls == ["read", "create", "read"]  # a new subject: missing, created, read
    keys.calls.clear()
    second = vault.encrypt("b-1", "name", "Ada Lovelace")
    assert keys.calls == ["read"]
    assert first != second  # fresh nonces
    assert vault.decrypt("b-1", "name", first) == vault.decrypt("b-1", "name", second) == "Ada Lovelace"
    key = keys.data_key("b-1")
    keys.destroy_key("b-1")  # erased: a later value is sealed under a new key
    third = vault.encrypt("b-1", "name", "Ada Lovelace")
    assert keys.data_key("b-1") != key
    assert vault.decrypt("b-1", "name", third) == "Ada Lovelace"

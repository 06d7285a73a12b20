"""Sealing a value asks the key store once when the subject's key exists (every screening of a known borrower seals
its name); a key is created only when asked (a new identity submitted), so a value sealed after an erasure — a
screened name of a request that read the file before it — gets no new key that would open it again."""

from __future__ import annotations

import pytest

from compliance.errors import SubjectKeyMissing
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


def test_a_known_subject_s_key_is_read_once_a_new_one_created_only_when_asked() -> None:
    keys = _Counted()
    vault = PiiVault(keys)
    with pytest.raises(SubjectKeyMissing):
        vault.encrypt("b-1", "name", "Ada Lovelace")  # not a new identity: no key is created
    assert keys.calls == ["read"]
    keys.calls.clear()
    first = vault.encrypt("b-1", "name", "Ada Lovelace", create_key=True)
    assert keys.calls == ["read", "create", "read"]  # a new identity: missing, created, read
    keys.calls.clear()
    second = vault.encrypt("b-1", "name", "Ada Lovelace")
    assert keys.calls == ["read"]
    assert first != second  # fresh nonces
    assert vault.decrypt("b-1", "name", first) == vault.decrypt("b-1", "name", second) == "Ada Lovelace"
    keys.destroy_key("b-1")  # erased: a name screened afterwards is not sealed, and no key comes back
    with pytest.raises(SubjectKeyMissing):
        vault.encrypt("b-1", "screened-name", "Ada Lovelace")
    with pytest.raises(SubjectKeyMissing):
        keys.data_key("b-1")
    key = vault.encrypt("b-1", "identity", "Ada Lovelace", create_key=True)  # a new identity submitted: a new key
    assert vault.decrypt("b-1", "identity", key) == "Ada Lovelace"

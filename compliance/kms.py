"""Subject data keys in AWS KMS: one HMAC key per subject (``HMAC_256``, ``GENERATE_VERIFY_MAC``) under the alias
``alias/creditmesh-subject/<subject id>``; the subject's 32-byte data key is KMS's HMAC-SHA256 of a fixed label, so
no key material or wrapped key is stored anywhere else. Erasure deletes the alias (the key can no longer be found)
and schedules the KMS key's deletion (KMS destroys its material after the waiting period, 7 days at least; it can be
used for nothing meanwhile). Tested against moto's local KMS server."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from compliance.errors import PiiError, SubjectKeyMissing
from compliance.pii import subject_id_checked

ALIAS_PREFIX = "alias/creditmesh-subject/"
DATA_KEY_LABEL = b"creditmesh subject data key v1"
DELETION_WINDOW_DAYS = 7


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


class KmsKeyStore:
    """``compliance.pii.KeyProvider`` on KMS. ``kms`` is a boto3 KMS client (``boto3.client("kms", ...)``)."""

    def __init__(self, kms: Any) -> None:
        self._kms = kms

    def _alias(self, subject_id: str) -> str:
        return ALIAS_PREFIX + subject_id_checked(subject_id)

    def create_key(self, subject_id: str) -> None:
        alias = self._alias(subject_id)
        try:
            self._kms.describe_key(KeyId=alias)
            return
        except ClientError as err:
            if _code(err) != "NotFoundException":
                raise PiiError(f"KMS refused describing {alias}: {_code(err)}") from err
        except BotoCoreError as err:
            raise PiiError(f"KMS unreachable: {type(err).__name__}") from err
        try:
            key_id = self._kms.create_key(
                KeySpec="HMAC_256",
                KeyUsage="GENERATE_VERIFY_MAC",
                Description="creditmesh subject data key (crypto-shredding)",
                Tags=[{"TagKey": "creditmesh:purpose", "TagValue": "subject-data-key"}],
            )["KeyMetadata"]["KeyId"]
            try:
                self._kms.create_alias(AliasName=alias, TargetKeyId=key_id)
            except ClientError as err:
                if _code(err) != "AlreadyExistsException":
                    raise
                # another process created the subject's key meanwhile: theirs stands, ours goes
                self._kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=DELETION_WINDOW_DAYS)
        except ClientError as err:
            raise PiiError(f"KMS refused creating the key for {alias}: {_code(err)}") from err
        except BotoCoreError as err:
            raise PiiError(f"KMS unreachable: {type(err).__name__}") from err

    def data_key(self, subject_id: str) -> bytes:
        alias = self._alias(subject_id)
        try:
            answer = self._kms.generate_mac(KeyId=alias, Message=DATA_KEY_LABEL, MacAlgorithm="HMAC_SHA_256")
        except ClientError as err:
            if _code(err) in {"NotFoundException", "KMSInvalidStateException", "DisabledException"}:
                raise SubjectKeyMissing(f"no data key for subject {subject_id}") from err
            raise PiiError(f"KMS refused the data key of {alias}: {_code(err)}") from err
        except BotoCoreError as err:
            raise PiiError(f"KMS unreachable: {type(err).__name__}") from err
        mac = bytes(answer["Mac"])
        if len(mac) != 32:
            raise PiiError(f"KMS answered a {len(mac)}-byte MAC for {alias}")
        return mac

    def destroy_key(self, subject_id: str) -> None:
        alias = self._alias(subject_id)
        try:
            key_id = self._kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
            self._kms.delete_alias(AliasName=alias)
            self._kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=DELETION_WINDOW_DAYS)
        except ClientError as err:
            if _code(err) == "NotFoundException":
                return  # never created, or already destroyed
            raise PiiError(f"KMS refused destroying {alias}: {_code(err)}") from err
        except BotoCoreError as err:
            raise PiiError(f"KMS unreachable: {type(err).__name__}") from err

"""A provider registration as the API stored it (``store.providers.ProviderRegistrationRow``): the registration and
policy it is built from, the pool it stands for, and the fingerprint by which the registry's reload tells a row that
changed (``providers.registry``)."""

from __future__ import annotations

import json

from compliance.adverse_action import Party
from providers.base import ProviderRegistration
from providers.models import Capabilities
from providers.policy import ResiliencePolicy
from providers.secrets import SecretBox
from store.providers import ProviderRegistrationRow


def fingerprint(row: ProviderRegistrationRow) -> str:
    """What a provider is built from in its stored registration (its creditor's legal name and address too: the
    notices given for it name them), and whether it quotes (its webhook URL is read by the relay itself)."""
    built_from = [
        row.kind,
        row.config,
        row.capabilities,
        row.resilience,
        row.enabled,
        row.legal_name,
        row.postal_address,
    ]
    return json.dumps(built_from, sort_keys=True, separators=(",", ":"), default=str)


def stored_pool(row: ProviderRegistrationRow) -> tuple[str, str] | None:
    """The pool (chain, address) a stored ``pool`` registration stands for; None for another kind's."""
    chain, address = row.config.get("chain"), row.config.get("address")
    if row.kind != "pool" or not isinstance(chain, str) or not isinstance(address, str):
        return None
    return chain, address


def registration_from_row(
    row: ProviderRegistrationRow, secrets: SecretBox | None = None
) -> tuple[ProviderRegistration, ResiliencePolicy | None]:
    """The registration ``row`` stores (its HMAC secret opened by ``secrets``, when given) and its own resilience
    policy (None: the platform's)."""
    capabilities = None if row.capabilities is None else Capabilities.from_document(row.capabilities)
    policy = None if row.resilience is None else ResiliencePolicy.model_validate(row.resilience)
    config = dict(row.config) if secrets is None else secrets.open_config(row.provider_id, row.config)
    creditor = None  # a registration stored before 0040, or made without them: none on file
    if row.legal_name is not None and row.postal_address is not None:
        creditor = Party(row.legal_name, row.postal_address)
    return ProviderRegistration(row.provider_id, row.kind, config, capabilities, creditor), policy

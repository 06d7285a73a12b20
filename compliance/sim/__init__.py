"""The simulated identity providers of local runs and tests: a KYC provider and the MLA status service in one HTTP
process (``python -m compliance.sim``, app in ``compliance.sim.identity``), speaking what ``compliance.identity_http``
speaks. The constants here import nothing, so the settings can name the local defaults."""

DEFAULT_PORT = 8610
LOCAL_KYC_SECRET = "kyc-webhook-local-secret"  # noqa: S105 - the local simulator's published secret
LOCAL_MLA_SECRET = "mla-operator-local-secret"  # noqa: S105 - idem

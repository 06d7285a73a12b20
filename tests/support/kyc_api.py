"""The API's borrower and KYC routers on a stand-in platform (a database, the borrowers' files, the HTTP identity
provider at a loopback port, the webhook refusal limiter): for the tests that drive KYC over real HTTP with the
simulated identity provider, without chains or lenders."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx
from fastapi import FastAPI

from aggregator.borrowers import BorrowerFiles
from api import idempotency, problems
from api.routers import borrowers, kyc
from api.settings import Settings
from compliance.identity_http import HttpKycProvider
from compliance.mla import LocalMlaStatusProvider, MlaStatusCache
from providers.webhooks import MemoryRefusalLimiter, RefusalLimiter
from risk.velocity import InMemoryVelocityStore
from store.borrowers import SqlBorrowerStore
from store.db import Database
from store.keystore import SqlKeyStore


def kyc_app(
    database: Database, keys_dir: Path, provider_port: int, secret: str, refusals: RefusalLimiter | None = None
) -> FastAPI:
    """The routers with problem+json and Idempotency-Key, asking the identity provider on ``provider_port``."""
    app = FastAPI()
    problems.install(app)
    idempotency.install(app)
    app.include_router(borrowers.router)
    app.include_router(kyc.router)
    app.state.platform = SimpleNamespace(
        database=database,
        borrowers=BorrowerFiles(
            SqlBorrowerStore(database), SqlKeyStore(f"sqlite:///{keys_dir / 'keys.db'}", b"k" * 32)
        ),
        kyc=HttpKycProvider(
            f"http://127.0.0.1:{provider_port}/kyc", secret.encode(), httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        ),
        settings=Settings(kyc_webhook_secret=secret),
        mla=MlaStatusCache(LocalMlaStatusProvider()),  # forgotten for a borrower who submits a new identity
        providers=SimpleNamespace(webhook_refusals=refusals or MemoryRefusalLimiter()),  # shared with lenders'
        velocity=InMemoryVelocityStore(),  # counts each borrower's KYC submissions
    )
    return app

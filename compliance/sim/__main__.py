"""Run the simulated identity providers (KYC and MLA) in their own process.

python -m compliance.sim --port 8610 --webhook-url http://127.0.0.1:8000/v1/kyc/webhooks
python -m compliance.sim --port 8610 --webhook-url URL --kyc-secret S --mla-secret S --mla-covered covered.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvicorn

from compliance.sim import DEFAULT_PORT, LOCAL_KYC_SECRET, LOCAL_MLA_SECRET
from compliance.sim.identity import IdentitySimConfig, covered_periods, create_identity_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="creditmesh simulated identity providers (KYC and MLA)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--webhook-url", required=True, help="where KYC verdicts are POSTed (the platform's route)")
    parser.add_argument("--kyc-secret", default=LOCAL_KYC_SECRET)
    parser.add_argument("--mla-secret", default=LOCAL_MLA_SECRET)
    parser.add_argument("--mla-covered", type=Path, default=None, help="JSON list of covered periods")
    args = parser.parse_args(argv)
    periods = covered_periods(json.loads(args.mla_covered.read_text())) if args.mla_covered else ()
    config = IdentitySimConfig(args.kyc_secret.encode(), args.webhook_url, args.mla_secret.encode(), periods)
    uvicorn.run(create_identity_app(config), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

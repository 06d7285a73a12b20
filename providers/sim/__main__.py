"""Run a simulated lender in its own process: ``python -m providers.sim --port 8600 --secret S --lender-id ID``."""

from __future__ import annotations

import argparse

import uvicorn

from providers.sim.lender import create_lender_app


def main() -> None:
    parser = argparse.ArgumentParser(description="creditmesh simulated HTTP lender (Provider Quote Protocol v1)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--lender-id", default="sim-bank")
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    app = create_lender_app(args.lender_id, args.secret)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

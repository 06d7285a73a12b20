"""Run simulated lenders in their own process.

python -m providers.sim --port 8600                         # the default fleet (sim-bank, sim-credit-union,
                                                            #   sim-fintech) under /lenders/{lender_id}
python -m providers.sim --port 8600 --fleet lenders.json    # a JSON list of SimLender documents
python -m providers.sim --port 8600 --secret S --lender-id ID   # one lender, also served at /
"""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

import uvicorn

from providers.sim.fleet import DEFAULT_FLEET, DEFAULT_PORT, SimLender
from providers.sim.lender import create_lender_app, create_sim_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="creditmesh simulated HTTP lenders (Provider Quote Protocol v1)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--fleet", type=Path, default=None, help="JSON file: a list of SimLender documents")
    parser.add_argument("--lender-id", default=None, help="serve only this lender (with --secret)")
    parser.add_argument("--secret", default=None)
    args = parser.parse_args(argv)
    if args.fleet is not None:
        lenders = [SimLender.model_validate(item) for item in json.loads(args.fleet.read_text())]
        app = create_sim_app(lenders)
    elif args.secret is not None:
        app = create_lender_app(args.lender_id or "sim-bank", args.secret)
    else:
        app = create_sim_app(list(DEFAULT_FLEET))
    freeze_start_up_heap()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def freeze_start_up_heap() -> None:
    """Collect once, then move every object left (the modules, FastAPI's and pydantic's, the app) out of the
    collector's passes, as the API does (``api.heap``). Unfrozen, the process's full passes walked its ~74,000
    start-up objects: 95-154 ms each, about every 36 s under the benchmarks' sequential load, and each one held up
    every lender's answer in flight, so that the benchmarks' latency tail measured this process's collector
    rather than the platform. Frozen objects are still freed by reference counting."""
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    main()

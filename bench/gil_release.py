"""What a call that releases the GIL costs the thread that makes it while other threads want the GIL: the event
loop's case (the API's worker threads run SQL, the caller's key, the screening while the loop signs offers and makes
ids). Each call is timed on the main thread, wall clock, while ``--threads`` worker threads alternate CPU bursts of
Python (``--burst`` iterations, ~1 ms) with short sleeps, as a worker does between its statements' round trips.

    uv run --frozen --no-sync python -m bench.gil_release
    uv run --frozen --no-sync python -m bench.gil_release --threads 0      # no contention: the calls' own cost

Pairs, each measured in the same run in alternating slices: a recoverable secp256k1 signature through coincurve
(cffi: the GIL released around each C call) against ``chain.secp256k1`` (the same library through ``ctypes.PyDLL``:
the GIL held); ``uuid.uuid4`` (an ``os.urandom`` read, which releases the GIL, per id) against
``compliance.random_ids.uuid4`` (one read per 64 ids). It prints each call's mean wall time on the main thread, the
share of calls that waited over 0.5 ms, and the ratio of the means (held / released)."""

from __future__ import annotations

import argparse
import hashlib
import statistics
import threading
import time
import uuid
from collections.abc import Callable

import coincurve

from chain.secp256k1 import RecoverableSigner
from compliance import random_ids


def _worker(stop: threading.Event, burst: int) -> None:
    while not stop.is_set():
        total = 0
        for step in range(burst):
            total += step
        time.sleep(0.0002)


def _slice(call: Callable[[], object], calls: int) -> tuple[float, int]:
    """Mean wall µs of ``calls`` calls and how many waited over 0.5 ms (a little Python between calls, as a loop)."""
    waited, spent = 0, 0.0
    for _ in range(calls):
        started = time.perf_counter()
        call()
        took = time.perf_counter() - started
        spent += took
        waited += took > 0.0005
        sum(range(200))
    return spent / calls * 1e6, waited


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=3, help="worker threads wanting the GIL")
    parser.add_argument("--burst", type=int, default=20_000, help="Python iterations a worker runs between sleeps")
    parser.add_argument("--calls", type=int, default=500, help="calls a slice")
    parser.add_argument("--rounds", type=int, default=8, help="slices per call, alternating")
    args = parser.parse_args(argv)
    key = coincurve.PrivateKey(hashlib.sha256(b"bench.gil_release").digest())
    held = RecoverableSigner(key)
    digest = hashlib.sha256(b"an offer's EIP-712 digest").digest()
    assert held.sign(digest) == key.sign_recoverable(digest, hasher=None)
    pairs: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("secp256k1 signature", lambda: key.sign_recoverable(digest, hasher=None), lambda: held.sign(digest)),
        ("uuid4", uuid.uuid4, random_ids.uuid4),
    ]
    stop = threading.Event()
    workers = [threading.Thread(target=_worker, args=(stop, args.burst), daemon=True) for _ in range(args.threads)]
    for worker in workers:
        worker.start()
    try:
        with open("/proc/loadavg") as load:
            print(f"load average: {load.read().split()[:3]}; {args.threads} worker threads, bursts of {args.burst}")
        print(f"{'call':20} {'GIL':9} {'mean µs':>8} {'waits > 0.5 ms':>15}")
        for name, released, kept in pairs:
            means: dict[str, list[float]] = {"released": [], "held": []}
            waits: dict[str, int] = {"released": 0, "held": 0}
            for n in range(args.rounds):
                order = [("released", released), ("held", kept)]
                for label, call in order if n % 2 == 0 else order[::-1]:
                    mean, waited = _slice(call, args.calls)
                    means[label].append(mean)
                    waits[label] += waited
            total = args.calls * args.rounds
            for label in ("released", "held"):
                share = f"{100 * waits[label] / total:.1f}%"
                print(f"{name:20} {label:9} {statistics.median(means[label]):8.1f} {share:>15}")
            ratio = statistics.median(means["held"]) / statistics.median(means["released"])
            print(f"{name:20} held / released: {ratio:.2f}")
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

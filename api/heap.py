"""The API process's heap and CPython's cyclic garbage collector.

An API process holds ~230 MB of long-lived objects once it is up: the modules, the platform, web3's contract
objects, the sanctions lists and their name index. The collector's full (generation 2) pass walks every one of them:
~230 ms with the event loop stopped, once a minute or so under load, and whichever requests are in flight wait for
it (the tail of the scale benchmark). ``freeze_long_lived`` moves what exists once start-up is done into the
collector's permanent generation (``gc.freeze``), so that later passes walk only what requests and background work
made since; frozen objects are still freed by reference counting as before, only no longer scanned for cycles.

``REQUEST_GEN0_THRESHOLD``: CPython's default young-generation pass every 700 allocations ran ~0.4 times per credit
request at N = 3 (0.8 ms each) and sent survivors on to generation 1 (a 1–4 ms pass every tenth); a larger threshold
lets more of a request's objects die by reference counting before any pass sees them (10,000: six 9–13 ms passes a
minute, half the collector's CPU, but a 10 ms pause lands on one request in twenty). 3,000 keeps a pass at a few ms."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

#: allocations (minus deallocations) of container objects between two young-generation passes
REQUEST_GEN0_THRESHOLD = 3_000


def freeze_long_lived(*, collect: bool = True) -> None:
    """Collect once (start-up's garbage is not kept for ever), then freeze every object left: call it when the
    objects that live as long as the process are built (after the sanctions name index at start-up; again, without
    the collection, after a newly imported list replaced it: the old one is freed by reference counting, and a full
    collection then would stop the event loop as long as the one this avoids). Also sets the young generation's
    threshold to ``REQUEST_GEN0_THRESHOLD``."""
    if collect:
        gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(REQUEST_GEN0_THRESHOLD, older, oldest)
    log.info("%d long-lived objects frozen out of the collector's passes", gc.get_freeze_count())

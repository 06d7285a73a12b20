"""Random (version 4) UUIDs with one ``os.urandom`` read per 64 ids.

``uuid.uuid4`` reads 16 bytes with ``os.urandom`` for each id, and ``os.urandom`` releases the GIL around its
``getrandom`` call. A credit request makes an id for every decision record and a nonce for every lender call on the
API's event loop; at each release a worker thread waiting for the GIL may take it, and the loop then waits for it
back (under load the loop was seen in ``uuid4`` ~2.7% of its time, for ~2 µs of CPU an id). Here each thread reads
1 KiB at once and cuts ids from it: the same randomness (the kernel's CSPRNG, 122 random bits an id) as
``uuid.UUID(bytes=os.urandom(16), version=4)``, which is what ``uuid.uuid4`` returns. Bytes are never handed out
twice: each thread has its own buffer, and a forked child drops the ones it inherited."""

from __future__ import annotations

import os
import threading
import uuid

#: ids cut from one read
BATCH = 64
_SIZE = 16

_local = threading.local()
_generation = [0]  # bumped in a forked child: the buffers it inherited are not used


def _forked() -> None:
    _generation[0] += 1


os.register_at_fork(after_in_child=_forked)


def uuid4() -> uuid.UUID:
    """A random version 4 UUID, as ``uuid.uuid4()``."""
    state = _local.__dict__
    at: int = state.get("at", BATCH * _SIZE)
    if at >= BATCH * _SIZE or state.get("generation") != _generation[0]:
        state["buffer"], state["generation"], at = os.urandom(BATCH * _SIZE), _generation[0], 0
    state["at"] = at + _SIZE
    return uuid.UUID(bytes=state["buffer"][at : at + _SIZE], version=4)

"""compliance.random_ids: version 4 UUIDs cut from a buffer, never repeated, fresh in a forked child."""

from __future__ import annotations

import os
import threading
import uuid

from compliance import random_ids


def test_ids_are_version_4_uuids_and_never_repeat_across_buffers_and_threads() -> None:
    made: list[uuid.UUID] = []

    def make() -> None:
        made.extend(random_ids.uuid4() for _ in range(random_ids.BATCH * 3 + 5))

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    make()
    assert len(set(made)) == len(made) == 5 * (random_ids.BATCH * 3 + 5)
    assert all(made_id.version == 4 and made_id.variant == uuid.RFC_4122 for made_id in made)


def test_a_forked_child_does_not_hand_out_its_parents_buffered_bytes() -> None:
    random_ids.uuid4()  # this thread's buffer filled, most of it unused
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, random_ids.uuid4().bytes)
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    in_child = uuid.UUID(bytes=os.read(read, 16))
    os.close(read)
    assert in_child != random_ids.uuid4()

"""The log handler's stream (``api.log_stream.DescriptorStream``) writes the bytes ``sys.stderr`` writes — UTF-8 with
backslash escapes, lines whole — through libc's ``write`` with the GIL held, and fails as ``os.write`` fails."""

from __future__ import annotations

import errno
import io
import logging
import os
import random
from pathlib import Path

import pytest

from api.log_stream import DescriptorStream
from api.logs import JsonFormatter

pytestmark = pytest.mark.unit

_PIECES = ["plain", "ünïcødé", "😀", "\udcff", "\x00\x1f\x7f", '{"json": "line"}', "\\", "x" * 70_000]


def test_the_bytes_are_those_sys_stderr_writes(tmp_path: Path) -> None:
    rng = random.Random(18)
    lines = ["".join(rng.choices(_PIECES, k=rng.randrange(1, 4))) + "\n" for _ in range(200)]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    fd = os.open(ours, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        stream = DescriptorStream(fd)
        assert stream.holds_gil
        assert all(stream.write(line) == len(line) for line in lines)
        stream.flush()
    finally:
        os.close(fd)
    with theirs.open("wb", buffering=0) as raw:
        text = io.TextIOWrapper(io.BufferedWriter(raw), "utf-8", "backslashreplace", line_buffering=True)
        for line in lines:
            text.write(line)
        text.flush()
    assert ours.read_bytes() == theirs.read_bytes()
    assert b"\\udcff" in ours.read_bytes()


def test_a_handler_on_it_writes_each_record_as_one_json_line(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    handler = logging.StreamHandler(DescriptorStream(fd))
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("test_log_stream")
    log.addHandler(handler)
    log.propagate = False
    try:
        for n in range(3):
            log.warning("line %d", n)
    finally:
        log.removeHandler(handler)
        os.close(fd)
    lines = path.read_text().splitlines()
    assert [line.split('"message": ')[1].split(",")[0] for line in lines] == ['"line 0"', '"line 1"', '"line 2"']


def test_a_failed_write_raises_as_os_write_does() -> None:
    read, write = os.pipe()
    os.close(read)
    os.close(write)
    with pytest.raises(OSError, match="Bad file descriptor") as raised:
        DescriptorStream(write).write("lost\n")
    assert raised.value.errno == errno.EBADF

"""The log handler's stream: each line written to the process's stderr descriptor with the GIL held.

``logging.StreamHandler`` on ``sys.stderr`` writes every line with a ``write`` system call made by ``FileIO``, which
releases the GIL around it. On the API's event loop that is once per request (the request's log line, api.logs):
a worker thread waiting for the GIL (a write, the caller's key) takes it, and the loop then waits until that thread
blocks or the switch interval (5 ms) passes — under load the loop spent ~1.6% of its wall time in the handler's
``emit`` (py-spy, all threads, concurrency 10), for a system call of a few microseconds. Here the same line goes to the
same descriptor through libc's ``write`` called with ``ctypes.PyDLL``, whose calls keep the GIL (as
``chain.secp256k1`` signs). The bytes are the ones ``sys.stderr`` writes (UTF-8, backslash escapes for what cannot be
encoded; a line is written whole or, after a partial write, its rest by ``os.write``); ``sys.stderr`` writes a line in
one call too, since it is line-buffered. Where libc cannot be loaded, or a write fails, ``os.write`` writes as before
and raises what it raises (the handler reports it)."""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any


def _libc_write() -> Any:
    """libc's ``ssize_t write(int fd, const void *buf, size_t count)`` as a ctypes function that keeps the GIL."""
    try:
        write = ctypes.PyDLL(None, use_errno=True).write
    except (OSError, AttributeError):  # pragma: no cover - a platform without a loadable libc
        return None
    write.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
    write.restype = ctypes.c_ssize_t
    return write


_WRITE = _libc_write()


class DescriptorStream:
    """A text stream for ``logging.StreamHandler`` over a file descriptor (stderr's): nothing buffered, so nothing to
    flush; each ``write`` sends its text at once."""

    def __init__(self, fd: int, encoding: str = "utf-8", errors: str = "backslashreplace") -> None:
        self.fd, self.encoding, self.errors = fd, encoding, errors

    @property
    def holds_gil(self) -> bool:
        """Whether lines are written with the GIL held (else by ``os.write``)."""
        return _WRITE is not None

    def write(self, text: str) -> int:
        data = text.encode(self.encoding, self.errors)
        sent = 0
        while _WRITE is not None and sent < len(data):
            written = _WRITE(self.fd, data[sent:] if sent else data, len(data) - sent)
            if written <= 0:
                if written < 0 and ctypes.get_errno() == errno.EINTR:
                    continue
                break  # os.write below meets the same error and raises it
            sent += written
        while sent < len(data):
            sent += os.write(self.fd, data[sent:])
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered here."""

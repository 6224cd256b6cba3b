"""An exclusive lock on a file, so two runs building the same cache (wheels, the lab's image) wait, not race.

The wait polls a non-blocking `flock` and sleeps in between. A blocking `flock` would be simpler, but the
pyinfra CLI runs every host's deploy file in a gevent greenlet of one thread: a greenlet blocked in the
kernel stalls all of them, including the one holding the lock (the first fleet deploy with an empty wheel
cache hung for ever that way). `time.sleep` is gevent's cooperative sleep once pyinfra has patched the
standard library, and a plain sleep everywhere else (the lab's threads, the wheel CLI).
"""

from __future__ import annotations

import errno
import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_SECONDS = 0.2


class LockTimeout(TimeoutError):
    """The lock stayed taken for longer than the caller's bound."""


@contextmanager
def locked(path: Path, timeout: float = 3600.0, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if missing) for the block.

    `waiting` is called once if the lock is taken by someone else (to tell the user why nothing moves);
    after `timeout` seconds of waiting, `LockTimeout` names the lock file.
    """
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise LockTimeout(f"{path} is still locked by another process after {timeout:g}s") from None
            if waiting is not None and not told:
                waiting()
                told = True
            time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

"""A deployment file read again when it changes (its mtime), without restarting the service that reads it."""

from collections.abc import Callable
from pathlib import Path
from threading import Lock
from typing import Generic, TypeVar

T = TypeVar("T")


class Reloading(Generic[T]):
    """What `parse` makes of the file at `path`, parsed again whenever the file's mtime or size changes. A file
    that changed into something `parse` refuses keeps the last good value (and the error is raised to the caller
    of the first `current` after the change only if there never was a good one)."""

    def __init__(self, path: Path, parse: Callable[[Path], T]):
        self.path, self._parse = path, parse
        self._lock = Lock()
        self._stamp: tuple[int, int] | None = None
        self._value: T | None = None
        self.error: str | None = None  # why the latest version of the file was refused, if it was

    def current(self) -> T:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        self._value, self.error = self._parse(self.path), None
                    except (ValueError, OSError) as exc:
                        if self._value is None:
                            raise
                        self.error = str(exc)
                    self._stamp = stamp
        assert self._value is not None
        return self._value

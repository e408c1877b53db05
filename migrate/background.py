"""One call run on a second thread while the caller does other work, its outcome handed back whole.

A run reads every migration file (disk) and opens its session (connect, run lock, history:
network round trips). The two wait on different things, so commands start the session here
and read the files meanwhile (bench/RESULTS.md). The thread is a daemon: a caller that fails
first, on a bad file say, reports at once and `abandon`s the call, whose result (a connection
holding the run lock) is then released by `discard` as soon as it exists.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """`call()` started on a daemon thread; `result()` joins it and returns or re-raises."""

    def __init__(self, call: Callable[[], T], discard: Callable[[T], None]) -> None:
        self._call = call
        self._discard = discard
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = False
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name="migrate-open", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            value = self._call()
        except BaseException as error:  # handed to result(), re-raised in the caller's thread
            with self._lock:
                self._error, self._done = error, True
            return
        with self._lock:
            self._value, self._done = value, True
            abandoned = self._abandoned
        if abandoned:
            self._discard(value)

    def result(self) -> T:
        """Wait for the call; its exception is raised here, in the caller's thread."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def abandon(self) -> None:
        """The caller gave up: discard the result now if it exists, else as soon as it does."""
        with self._lock:
            self._abandoned = True
            ready = self._done and self._error is None
        if ready:
            self._discard(self._value)  # type: ignore[arg-type]

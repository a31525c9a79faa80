"""Work done in a thread of its own, fed through a bounded queue.

The load and the reports compress bytes while they go on with their
queries: zlib lets go of the interpreter while it compresses, so the work
runs on the second core. At most ``queued`` pieces wait for the thread; a
caller ahead of that waits. The first error the work raises is raised again
by :meth:`Background.finish`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class Background:
    def __init__(
        self,
        consume: Callable[[bytes], None],
        done: Callable[[], None] | None = None,
        queued: int = 16,
        name: str = "rxaudit-background",
    ) -> None:
        """``consume`` is called with each piece fed, in order; ``done`` once
        after the last (neither after an error)."""
        self._consume = consume
        self._done = done
        self._queue: queue.Queue[bytes | None] = queue.Queue(queued)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (piece := self._queue.get()) is not None:
            if self._error is None:  # after an error, the rest is only drained
                try:
                    self._consume(piece)
                except BaseException as exc:  # raised again by finish()
                    self._error = exc
        if self._error is None and self._done is not None:
            try:
                self._done()
            except BaseException as exc:
                self._error = exc

    def feed(self, piece: bytes) -> None:
        self._queue.put(piece)

    def stop(self) -> None:
        """End the work (what was fed is done first) and wait for the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> None:
        """:meth:`stop`, then raise the work's error if it had one."""
        self.stop()
        if self._error is not None:
            raise self._error

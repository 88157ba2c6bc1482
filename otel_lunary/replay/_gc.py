"""The cyclic garbage collector held off while replay reads, joins and renders.

Parsing makes millions of small acyclic containers and the assembler keeps a share of
them, so every collection walks an ever larger heap for nothing (a third of the replay
time on 1M spans with only full collections deferred, see docs/performance.md). Nothing
replay makes while reading is cyclic, so reference counting frees it all the same. The
collector's state and thresholds come back when the last reader is done. Objects made
while it was off are all still in the youngest generation then, and the first young
collection would walk every one of them (1.3 s after 1M spans): unless the program froze
objects itself, ``gc.freeze()`` + ``gc.unfreeze()`` first moves them, in constant time, to
the oldest generation, where they are collected as usual, only not walked by every young
collection. Renderers hold it off too (as a decorator): they parse the content kept as
JSON text (LLM message histories) and build output from it, none of it cyclic, and the
collections that caused were up to a fifth of rendering time (the realistic bench file).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FULL_COLLECTION_THRESHOLD = 1000
_lock = threading.Lock()
_readers = 0
_saved: tuple[bool, tuple[int, int, int]] | None = None


@contextmanager
def deferred_collections() -> Iterator[None]:
    """No cyclic garbage collection inside (counted across threads); restored after the last one."""
    global _readers, _saved
    with _lock:
        _readers += 1
        if _readers == 1:
            enabled, thresholds = gc.isenabled(), gc.get_threshold()
            _saved = (enabled, thresholds)
            young, middle, old = thresholds
            gc.set_threshold(young, middle, max(old, FULL_COLLECTION_THRESHOLD))
            gc.disable()
    try:
        yield
    finally:
        with _lock:
            _readers -= 1
            if _readers == 0 and _saved is not None:
                enabled, thresholds = _saved
                if gc.get_freeze_count() == 0:
                    gc.freeze()  # everything to the permanent generation...
                    gc.unfreeze()  # ...and back, into the oldest one
                gc.set_threshold(*thresholds)
                if enabled:
                    gc.enable()
                _saved = None

"""The cyclic garbage collector around bulk building: one helper for every place that builds hundreds of thousands
of long-lived objects at once (a config's YAML, a command's imports, the sandbox app's import, the downloads'
rows). None of them forms garbage cycles, so the collector's passes over them find nothing."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building hundreds of thousands of nodes triggers the cyclic GC over and over (4x slower); the
    nodes form no garbage cycles, so collection waits until the document is built."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()  # what was built is long-lived: keep later collections from walking it again
            gc.enable()

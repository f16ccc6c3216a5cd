"""The collector settings a serving process runs with (app.freeze_startup_heap)."""

from __future__ import annotations

import gc

from toolwire.server import app


def test_serving_freezes_the_startup_heap_and_collects_less_often():
    thresholds = gc.get_threshold()
    try:
        gc.unfreeze()
        app.freeze_startup_heap()
        assert gc.get_freeze_count() > 0  # what start-up allocated is out of the collector's reach
        assert gc.get_threshold() == app.GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)

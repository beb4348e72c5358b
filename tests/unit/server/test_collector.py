"""`jobwarden serve` tunes the garbage collector once started (app.settle_collector)."""

from __future__ import annotations

import gc

from jobwarden_server import app


def test_start_up_objects_are_frozen_and_young_objects_collected_less_often() -> None:
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        app.settle_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == app.GC_THRESHOLDS
        assert app.GC_THRESHOLDS[0] > thresholds[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)

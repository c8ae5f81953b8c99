"""The ingestion commands' GC tuning: thresholds raised, start-up heap frozen."""

from __future__ import annotations

import gc

from ledger.runtime import GEN0_THRESHOLD, tune_gc_for_throughput


def test_tuning_raises_thresholds_and_freezes_the_heap() -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults: a CLI test may have tuned them already
    try:
        tune_gc_for_throughput()
        assert gc.get_threshold()[0] == GEN0_THRESHOLD > 700
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

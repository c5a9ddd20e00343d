"""The interpreter settings `voiplab serve` (and each registrar worker) applies once started."""

from __future__ import annotations

import gc
import sys

import pytest

from gateway.serve import GC_THRESHOLDS, SWITCH_INTERVAL_S, tune_gc, tune_switch_interval


def test_switch_interval_hands_the_gil_back_to_the_loop_within_half_a_millisecond() -> None:
    before = sys.getswitchinterval()
    try:
        tune_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        assert sys.getswitchinterval() < before  # CPython's default is 5 ms
    finally:
        sys.setswitchinterval(before)


def test_gc_keeps_young_generations_small_and_freezes_the_start_up_heap() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

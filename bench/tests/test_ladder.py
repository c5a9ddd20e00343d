"""The rate ladder: doubling, bisection after the first failure, walking down, ceiling."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.ladder import Ladder, nice


def drive(ladder: Ladder, capacity: float) -> list[tuple[int, bool]]:
    """Run the ladder against a server that passes every rate up to `capacity`."""
    history: list[tuple[int, bool]] = []
    while (rate := ladder.next_rate(history)) is not None:
        assert rate not in [r for r, _ in history], "a rate is never run twice"
        history.append((rate, rate <= capacity))
        assert len(history) < 50
    return history


@pytest.mark.parametrize("value", [1, 7, 12, 99, 101, 1234, 15_678, 99_999])
def test_nice_keeps_two_significant_digits(value: int) -> None:
    out = nice(value)
    assert abs(out - value) <= max(0.5, value * 0.05)
    assert len(str(out).rstrip("0")) <= 2 or value < 100


@pytest.mark.parametrize("capacity", [30, 450, 3_000, 7_777, 21_000])
def test_best_is_below_capacity_and_within_a_factor_of_two(capacity: int) -> None:
    ladder = Ladder(start=100, refine=2)
    history = drive(ladder, capacity)
    best = Ladder.best(history)
    assert best <= capacity
    assert best * 2 > capacity or best == 0


def test_more_refinement_never_gets_further_from_capacity() -> None:
    capacity = 13_300
    coarse = Ladder.best(drive(Ladder(start=500, refine=0), capacity))
    fine = Ladder.best(drive(Ladder(start=500, refine=3), capacity))
    assert coarse <= fine <= capacity


def test_refinement_count_bounds_the_steps_after_the_first_failure() -> None:
    for refine in range(4):
        history = drive(Ladder(start=500, refine=refine), 13_300)
        first_fail = next(i for i, (_, ok) in enumerate(history) if not ok)
        assert len(history) - first_fail - 1 <= refine


def test_walks_down_when_the_first_rung_fails() -> None:
    history = drive(Ladder(start=500, floor=5, refine=1), 80)
    assert history[0] == (500, False)
    assert 0 < Ladder.best(history) <= 80


def test_nothing_passes_down_to_the_floor() -> None:
    history = drive(Ladder(start=100, floor=10), 0)
    assert Ladder.best(history) == 0
    assert min(r for r, _ in history) >= 10


def test_stops_at_the_ceiling_without_failure() -> None:
    ladder = Ladder(start=1_000, ceiling=5_000)
    history = drive(ladder, 1e9)
    assert all(ok for _, ok in history)
    assert max(r for r, _ in history) == 5_000


best_cases: list[tuple[list[tuple[int, bool]], Callable[[int], bool]]] = [
    ([(100, True), (200, True), (400, False), (300, True)], lambda b: b == 300),
    ([(100, True), (200, False), (150, False)], lambda b: b == 100),
    ([(100, False), (50, True)], lambda b: b == 50),
    # a pass above a lower failure is not trusted: the result stays below the failure
    ([(100, True), (200, False), (300, True)], lambda b: b == 100),
]


@pytest.mark.parametrize(("history", "check"), best_cases)
def test_best_ignores_passes_above_a_failure(history: list[tuple[int, bool]],
                                             check: Callable[[int], bool]) -> None:
    assert check(Ladder.best(history))

"""Which rate to try next: doubling until the first failure, then a few bisection steps.

Pure logic on the history of (rate, passed) pairs, so it is easy to reason about and
to test. Rates are rounded to two significant digits to keep the table readable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def nice(rate: float) -> int:
    """Round to two significant digits (1234 -> 1200, 87 -> 87, 5 -> 5)."""
    if rate < 10:
        return max(1, round(rate))
    digits = math.floor(math.log10(rate)) - 1
    return int(round(rate / 10**digits) * 10**digits)


@dataclass(frozen=True)
class Ladder:
    start: int
    factor: float = 2.0
    ceiling: int = 100_000  # never ask for more than this
    floor: int = 5  # when even `start` fails, go down to here
    refine: int = 2  # bisection steps after the first failure
    resolution: float = 0.05  # stop refining when the gap is below this fraction of the pass

    def next_rate(self, history: list[tuple[int, bool]]) -> int | None:
        """The next rate to run, or None when done. `history` is (rate, passed) in run order."""
        if not history:
            return min(self.start, self.ceiling)
        passes = [r for r, ok in history if ok]
        fails = [r for r, ok in history if not ok]
        best = max(passes, default=0)
        if not fails:
            if best >= self.ceiling:
                return None
            return min(self.ceiling, max(best + 1, nice(best * self.factor)))
        lowest_fail = min(r for r in fails)
        if best == 0:
            # even the first rung failed: walk down until something passes
            candidate = nice(lowest_fail / self.factor)
            if candidate < self.floor or candidate >= lowest_fail:
                return None
            return candidate
        first_fail_index = next(i for i, (_, ok) in enumerate(history) if not ok)
        refinements = len(history) - first_fail_index - 1
        if refinements >= self.refine:
            return None
        if lowest_fail - best <= max(1, best * self.resolution):
            return None
        candidate = nice((best + lowest_fail) / 2)
        if candidate <= best or candidate >= lowest_fail:
            return None
        return candidate

    @staticmethod
    def best(history: list[tuple[int, bool]]) -> int:
        """Highest passing rate below the lowest failing one (0 when none passed)."""
        fails = [r for r, ok in history if not ok]
        ceiling = min(fails) if fails else math.inf
        return max((r for r, ok in history if ok and r < ceiling), default=0)

"""Side-by-side timing helpers: alternate the contenders, keep each one's best round."""
from __future__ import annotations

import time
from typing import Callable


def best_times(contenders: dict[str, Callable[[], object]], rounds: int = 11) -> dict[str, float]:
    """Seconds of the fastest of ``rounds`` runs of each contender, run alternately (noise hits all alike)."""
    for fn in contenders.values():  # warm up (compile, caches)
        fn()
    best = {name: float("inf") for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def report(title: str, rows: list[tuple[str, str, str]]) -> None:
    """Print ``(measure, figure, goal)`` rows under a title."""
    print(f"\n== {title}")
    width = max(len(r[0]) for r in rows)
    for measure, figure, goal in rows:
        print(f"  {measure:<{width}}  {figure:>14}   {goal}")

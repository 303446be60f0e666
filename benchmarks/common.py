"""Side-by-side timing helpers: alternate the contenders, keep each one's best round."""
from __future__ import annotations

from ccrop_loaders.bench import best_times  # noqa: F401  (the one timing method, shared with `ccrop bench`)


def report(title: str, rows: list[tuple[str, str, str]]) -> None:
    """Print ``(measure, figure, goal)`` rows under a title."""
    print(f"\n== {title}")
    width = max(len(r[0]) for r in rows)
    for measure, figure, goal in rows:
        print(f"  {measure:<{width}}  {figure:>14}   {goal}")

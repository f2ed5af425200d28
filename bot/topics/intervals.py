"""Bootstrap confidence intervals for evaluation figures (one helper for every task's figures).

Resampling the evaluated items with replacement and recomputing the figure shows how much it would move
on another sample of the same size: a few hundred test messages cannot carry three decimals.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_interval(n_items: int, statistic: Callable[[np.ndarray], float], resamples: int = 1000,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of `statistic(indices)` over `resamples` draws of `n_items` indices with
    replacement. `statistic` receives an index array into the caller's items (e.g. test messages, or
    clusters for pairwise figures, so items that belong together are drawn together)."""
    if n_items < 1 or resamples < 1:
        raise ValueError("need at least one item and one resample")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(resamples)])
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return round(float(low), 4), round(float(high), 4)

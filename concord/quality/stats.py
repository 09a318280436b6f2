"""Comparing rates across clinicians: counts, a 95% Wilson score interval, and when the
numbers are too small to compare (docs/quality-measures.md, "Comparison")."""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # the standard normal quantile for a two-sided 95% interval
# Below this many patients in a rate's denominator a comparison is flagged as too small: the
# case minimum CMS applies before it scores a MIPS quality measure (docs/quality-measures.md).
MIN_DENOMINATOR = 20


def wilson_interval(successes: int, total: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval for successes out of total (Wilson 1927); None for none."""
    if total <= 0:
        return None
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def too_small(total: int) -> bool:
    return total < MIN_DENOMINATOR

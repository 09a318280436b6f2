"""How fast responses are scored: pure scoring on one core, no database.

    python bench/scoring.py [--n 300000]

Prints responses scored per second for each shipped instrument with a score, and for a mix.
The target (issue 3) is 100,000 responses a second on one core.
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("CONCORD_ENV", "development")

from concord.measures.library import library  # noqa: E402
from concord.measures.scoring import score_response  # noqa: E402


def random_answers(instrument, rng):
    answers = {}
    for item in instrument.items:
        if item.show_if is None or rng.random() < 0.5:
            answers[item.id] = rng.choice(sorted(item.values))
    return answers


def measure(instruments, n, seed=7):
    rng = random.Random(seed)
    work = [
        (inst, random_answers(inst, rng))
        for inst in (instruments[i % len(instruments)] for i in range(n))
    ]
    start = time.perf_counter()
    for inst, answers in work:
        score_response(inst, answers, "female")
    elapsed = time.perf_counter() - start
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300_000)
    args = parser.parse_args()
    scored = [i for i in library().all() if i.usable]
    print(f"{'instrument':<14} {'responses/s':>12}")
    for inst in scored:
        print(f"{inst.code:<14} {measure([inst], args.n // 3):>12,.0f}")
    mix = measure(scored, args.n)
    print(
        f"{'mix':<14} {mix:>12,.0f}   (target: 100,000/s on one core: "
        f"{'met' if mix >= 100_000 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()

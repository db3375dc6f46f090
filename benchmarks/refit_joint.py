"""Refits of a jointly fitted mediator-outcome pair (varying mediator slope), timed.

10,000 rows in 200 groups: the mediator's slope on the treatment and the outcome's slope on
the mediator vary by group, so ``Analysis`` fits the two equations jointly
(``bayes/joint.py``). One fit, then ``--refits`` refits on data with the treatment permuted
(seeds from ``Analysis.replicate_seeds``), in one process.

Run from the repository root::

    .venv/bin/python benchmarks/refit_joint.py --refits 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402


def main() -> None:
    """Time the fit and the refits; print them."""
    from vagg_bayes import Analysis, SamplerSettings, Spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--per-group", type=int, default=50)
    parser.add_argument("--refits", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    rng = np.random.default_rng(7)
    J = args.groups
    g = np.repeat(np.arange(J), args.per_group)
    t = rng.normal(size=g.size)
    m = (0.5 + 0.3 * rng.normal(size=J))[g] * t + rng.normal(size=g.size)
    y = 0.2 * t + (0.4 + 0.3 * rng.normal(size=J))[g] * m + rng.normal(size=g.size)
    frame = pd.DataFrame({"city": g, "t": t, "m": m, "y": y})
    spec = Spec(outcome="y", treatment="t", mediators=("m",), group="city",
                varying_slope=True, varying_mediator="m")
    analysis = Analysis(spec, SamplerSettings(random_seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        analysis.fit(frame, tables=False)
        fit_s = time.perf_counter() - start
        times = []
        for seed in analysis.replicate_seeds(args.refits):
            permuted = frame.assign(t=rng.permutation(frame["t"].to_numpy()))
            start = time.perf_counter()
            analysis.refit(permuted, seed=seed)
            times.append(time.perf_counter() - start)
    print(f"joint pair, {len(frame)} rows, {J} groups: fit {fit_s:.1f} s, refits "
          f"{[round(x, 2) for x in times]}, median {statistics.median(times):.1f} s")


if __name__ == "__main__":
    main()

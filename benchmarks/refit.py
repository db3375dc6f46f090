"""Fit once, refit many times: the Engine's refit against a plain fit, in one process.

The data: ``benchmarks/_common.py``'s informative case (20,000 rows, 280 groups,
intercept and slope of ``x`` varying by group). ``Analysis.fit`` is timed once (it
compiles, adapts NUTS and samples); then ``--refits`` refits on data with the treatment
permuted (new seeds from ``Analysis.replicate_seeds``), each reusing the compiled model,
the frozen priors, the encoding and the first fit's NUTS adaptation (warm start); for
comparison the same refits adapted afresh (``warm=False``, what a refit cost before warm
starts) and the same warm refits with NUTS evaluating the PyTensor graph instead of the
model's compiled twin of its log density (``sample.COMPILED_TWIN = False``, what a
refit cost before the twins: ``bayes/collapsed_kernel.py`` for the Gaussian model,
``bayes/glm_kernel.py`` for the logit model). The median refit
times are printed beside the fit time, and whether a refit on the first data with the
first seed reproduced the fit's draws.

Run from the repository root::

    .venv/bin/python benchmarks/refit.py --family gaussian bernoulli --refits 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, make_case_data  # noqa: E402


def main() -> None:
    """Time fit and refits; print the table."""
    from vagg_bayes import Analysis, SamplerSettings, Spec
    from vagg_bayes.bayes import sample

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="+", default=["gaussian", "bernoulli"])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=280)
    parser.add_argument("--refits", type=int, default=5)
    parser.add_argument("--cores", type=int, default=None,
                        help="processes for chains (default: one per chain)")
    args = parser.parse_args()
    print(machine())
    rows = []
    for family in args.family:
        data = make_case_data(args.rows, args.groups, "informative", family=family)
        spec = Spec(outcome="y", treatment="x", controls=("z1", "z2"), group="grp",
                    varying_slope=True, family=family)
        settings = SamplerSettings(draws=1000, tune=1000, chains=2, random_seed=1,
                                   cores=args.cores)
        analysis = Analysis(spec, settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            first = analysis.fit(data, tables=False)
            fit_s = time.perf_counter() - start
            times, cold, graph = [], [], []
            # both the collapsed Gaussian and the logit model carry a compiled twin
            twin = family in ("gaussian", "bernoulli")
            rng = np.random.default_rng(0)
            for seed in analysis.replicate_seeds(args.refits):
                permuted = data.assign(x=rng.permutation(data["x"].to_numpy()))
                runs = [(True, True, times), (False, True, cold)]
                if twin:
                    runs.append((True, False, graph))
                for warm, use_twin, out in runs:  # interleaved: same load for all three
                    sample.COMPILED_TWIN = use_twin
                    start = time.perf_counter()
                    analysis.refit(permuted, seed=seed, warm=warm)
                    out.append(time.perf_counter() - start)
                sample.COMPILED_TWIN = True
            again = analysis.refit(data)
        same = bool(np.array_equal(first.effect_draws["total"], again.effect_draws["total"]))
        graph_med = statistics.median(graph) if graph else float("nan")
        rows.append((family, fit_s, statistics.median(times), min(times),
                     statistics.median(cold), graph_med, same))
        print(f"{family}: fit {fit_s:.1f} s, refits {[round(t, 2) for t in times]}, "
              f"cold refits {[round(t, 2) for t in cold]}, "
              f"graph refits {[round(t, 2) for t in graph]}", flush=True)
    print("\n| family | fit s (compile + adapt + sample) | median refit s (warm) | fastest refit s "
          "| median refit s (adapted afresh) | median refit s (warm, graph not twin) "
          "| twin speed-up | refit on the first data reproduces the fit |"
          "\n|---|---:|---:|---:|---:|---:|---:|---|")
    for family, fit_s, med, low, cold_med, graph_med, same in rows:
        print(f"| {family} | {fit_s:.1f} | {med:.2f} | {low:.2f} | {cold_med:.2f} "
              f"| {graph_med:.2f} | {graph_med / med:.2f}x | {same} |")


if __name__ == "__main__":
    main()

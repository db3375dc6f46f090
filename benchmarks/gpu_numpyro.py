"""The JAX sampler (NumPyro) on a GPU, beside PyMC's NUTS on the same machine's CPUs.

Run where an accelerator is lent (see the README's performance section):

    PYTHONPATH=. python benchmarks/gpu_numpyro.py --rows 100000 1000000

Prints, per model and sampler: wall time of `estimate` (compilation included), ESS_bulk
and r_hat of the treatment effect, and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import make_data  # noqa: E402


def run(rows: int, family: str, sampler: str, groups: int = 280) -> dict:
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.pipeline import estimate
    from vagg_bayes.spec import Spec

    data = make_data(rows, groups, family=family)
    spec = Spec(outcome="y", treatment="x", controls=("z1", "z2"), group="grp",
                family=family, varying_slope=True)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = estimate(data, spec, settings=SamplerSettings(sampler=sampler, random_seed=1))
    wall = time.perf_counter() - start
    row = result.summary("effects").set_index("effect").loc["total"]
    return {"rows": rows, "family": family, "sampler": sampler, "wall_s": wall,
            "ess_bulk": row.ess_bulk, "r_hat": row.r_hat, "mean": row["mean"],
            "max_r_hat_all": result.diagnostics.max_r_hat}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument("--families", nargs="+", default=["bernoulli", "gaussian"])
    parser.add_argument("--samplers", nargs="+", default=["numpyro", "nuts"])
    args = parser.parse_args()
    print("| family | rows | sampler | wall s | ESS_bulk | ESS/s | r_hat | mean |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for family in args.families:
        for rows in args.rows:
            for sampler in args.samplers:
                r = run(rows, family, sampler)
                print(f"| {family} | {rows} | {sampler} | {r['wall_s']:.1f} | "
                      f"{r['ess_bulk']:.0f} | {r['ess_bulk'] / r['wall_s']:.1f} | "
                      f"{r['r_hat']:.3f} | {r['mean']:.4f} |", flush=True)


if __name__ == "__main__":
    main()

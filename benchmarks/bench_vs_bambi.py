"""vagg-bayes against Bambi on the same data: whole-process wall time, ESS and r_hat.

Both programs run as subprocesses and are timed whole (start-up, data load,
compilation, sampling, writing results), with their peak resident memory. The data
have neutral names: ``y ~ x + z1 + z2``, groups ``grp``, intercept and slope of ``x``
varying by group (the treatment varies within groups).

- vagg-bayes: ``vagg-bayes estimate spec.toml --data data.csv --out DIR`` (default
  sampler: PyMC's NUTS on the collapsed model). The treatment effect is the ``total``
  row of effects.csv and the ``x`` row of coefficients.csv (the population slope,
  Bambi's quantity); the table uses the smaller ESS of the two.
- Bambi: its default model ``y ~ x + z1 + z2 + (1 + x | grp)`` fitted with
  ``model.fit()`` (PyMC's NUTS), the same draws, tune and chains; the treatment effect
  is the common slope ``x``.

The data (``--data``, see ``benchmarks/_common.py``): ``informative`` (default) has
groups whose rows pin down their own intercept and slope, the case in which Bambi's
non-centred model fails to mix (it reproduces the issue's reference run: about 140 s,
ESS of ``x`` under 10, r_hat above 1.1); ``weak`` and ``panel`` are easy for both.

Run from the repository root::

    .venv/bin/python benchmarks/bench_vs_bambi.py                  # 20k rows, 280 groups
    .venv/bin/python benchmarks/bench_vs_bambi.py --repeats 3 --rows 20000 --groups 280

Needs ``bambi`` (``pip install 'vagg-bayes[bench]'``) for the Bambi side; ``--skip-bambi``
runs vagg-bayes alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    KINDS,
    machine,
    run_timed,
    treatment_row,
    vagg_command,
    write_case,
)

BAMBI_SCRIPT = textwrap.dedent(
    """\
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import arviz as az
    import bambi as bmb
    import pandas as pd

    data, draws, tune, chains, seed = sys.argv[1], *map(int, sys.argv[2:6])
    df = pd.read_csv(data)
    model = bmb.Model("y ~ x + z1 + z2 + (1 + x | grp)", df)
    idata = model.fit(draws=draws, tune=tune, chains=chains, cores=chains, random_seed=seed,
                      progressbar=False)
    summ = az.summary(idata, kind="diagnostics")
    row = summ.loc["x"]
    post = idata.posterior["x"]
    scalar = [n for n in summ.index if "[" not in n]  # population terms and group SDs
    print("BAMBI_RESULT " + json.dumps({
        "mean": float(post.mean()), "sd": float(post.std()),
        "ess_bulk": float(row["ess_bulk"]), "r_hat": float(row["r_hat"]),
        "max_r_hat": float(summ["r_hat"].max()),
        "max_r_hat_population": float(summ.loc[scalar, "r_hat"].max()),
        "divergences": int(idata.sample_stats["diverging"].sum()),
    }))
    """
)


def run_vagg(case: Path, out: Path, args, seed: int) -> dict:
    spec, data = case / "spec.toml", case / "data.csv"
    cmd = [*vagg_command(), "estimate", str(spec), "--data", str(data), "--out", str(out),
           "--draws", str(args.draws), "--tune", str(args.tune), "--chains", str(args.chains),
           "--seed", str(seed)]
    t = run_timed(cmd, timeout=args.timeout)
    if t.returncode != 0:
        raise RuntimeError(f"vagg-bayes failed ({t.returncode}):\n{t.stderr[-3000:]}")
    row = treatment_row(out)
    ess = min(row["ess_bulk"], row["coef_ess_bulk"])
    return {"wall": t.wall, "peak_mib": t.peak_mib, "ess_bulk": ess,
            "ess_total": row["ess_bulk"], "ess_coef": row["coef_ess_bulk"],
            "r_hat": max(row["r_hat"], row["coef_r_hat"]), "max_r_hat": row["max_r_hat"],
            "mean": row["mean"], "divergences": row["divergences"]}


def run_bambi(case: Path, args, seed: int) -> dict:
    script = case / "bambi_fit.py"
    script.write_text(BAMBI_SCRIPT)
    cmd = [sys.executable, str(script), str(case / "data.csv"), str(args.draws), str(args.tune),
           str(args.chains), str(seed)]
    t = run_timed(cmd, timeout=args.timeout)
    line = next((ln for ln in t.stdout.splitlines() if ln.startswith("BAMBI_RESULT ")), None)
    if t.returncode != 0 or line is None:
        raise RuntimeError(f"Bambi failed ({t.returncode}):\n{t.stderr[-3000:]}")
    res = json.loads(line.split(" ", 1)[1])
    return {"wall": t.wall, "peak_mib": t.peak_mib, **res}


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--groups", type=int, default=280)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=None, help="default: --draws")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1, help="medians over this many runs")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", choices=list(KINDS), default="informative",
                   help="data set (see benchmarks/_common.py); default: informative")
    p.add_argument("--skip-bambi", action="store_true")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--json", type=Path, default=None, help="also write the raw runs here")
    args = p.parse_args(argv)
    args.tune = args.draws if args.tune is None else args.tune

    tmp = tempfile.TemporaryDirectory(prefix="vagg_bench_") if args.workdir is None else None
    root = Path(tmp.name) if tmp else args.workdir
    case = root / f"gauss_{args.data}_{args.rows}_{args.groups}"
    write_case(case, args.rows, args.groups, args.data, seed=args.seed)
    print(f"# vagg-bayes vs Bambi: {args.rows:,} rows, {args.groups} groups ({args.data} data), "
          f"varying intercept and slope, {args.chains} chains x {args.draws} draws "
          f"(tune {args.tune}), {args.repeats} repeat(s)")
    print(f"# {machine()}; load average at start {os.getloadavg()[0]:.2f}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")

    vagg, bambi = [], []
    for r in range(args.repeats):
        seed = args.seed + r
        vagg.append(run_vagg(case, case / f"out_{r}", args, seed))
        print(f"vagg-bayes run {r + 1}: {vagg[-1]['wall']:.1f} s, ESS {vagg[-1]['ess_bulk']:.0f}, "
              f"r_hat {vagg[-1]['r_hat']:.3f}", flush=True)
        if not args.skip_bambi:
            bambi.append(run_bambi(case, args, seed))
            print(f"Bambi run {r + 1}: {bambi[-1]['wall']:.1f} s, ESS {bambi[-1]['ess_bulk']:.0f}, "
                  f"r_hat {bambi[-1]['r_hat']:.3f}", flush=True)

    rows = [("vagg-bayes", vagg)] + ([("Bambi (PyMC NUTS)", bambi)] if bambi else [])
    print()
    print("| program | wall (s) | peak memory (MiB) | ESS_bulk (treatment) | ESS/s | r_hat "
          "(treatment) | max r_hat (all) |")
    print("|:---|---:|---:|---:|---:|---:|---:|")
    ess_per_s = {}
    for name, runs in rows:
        for run in runs:
            run["ess_per_s"] = run["ess_bulk"] / run["wall"]
        ess_per_s[name] = _median(runs, "ess_per_s")
        print(f"| {name} | {_median(runs, 'wall'):.1f} | {_median(runs, 'peak_mib'):.0f} | "
              f"{_median(runs, 'ess_bulk'):.0f} | {ess_per_s[name]:.2f} | "
              f"{_median(runs, 'r_hat'):.3f} | {_median(runs, 'max_r_hat'):.3f} |")
    if bambi:
        ratio = ess_per_s["vagg-bayes"] / ess_per_s["Bambi (PyMC NUTS)"]
        print(f"\nESS/s ratio vagg-bayes / Bambi: {ratio:,.0f} x (median ESS/s over "
              f"{args.repeats} repeat(s))")
    print("(vagg-bayes ESS: the smaller of the total effect and the population slope of x; "
          "Bambi: the common slope x)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "vagg": vagg, "bambi": bambi}, indent=2))
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

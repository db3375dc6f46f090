"""How ``vagg-bayes estimate`` scales with the number of rows: whole-process wall time,
peak memory and convergence, Gaussian (collapsed) and Bernoulli.

Each run is a subprocess ``vagg-bayes estimate spec.toml --data data.csv --out DIR``
timed whole (CSV load included) with ``/usr/bin/time -v``; the data are written
first (not timed). A small warm-up run fills PyTensor's compile cache first, as any
earlier run would (``--no-warmup`` skips it).

Run from the repository root::

    .venv/bin/python benchmarks/scale.py                       # 10k, 100k, 1M + Bernoulli 100k
    .venv/bin/python benchmarks/scale.py --rows 10000 100000 1000000 3000000
    .venv/bin/python benchmarks/scale.py --data panel --bernoulli-rows 100000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
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


def run_case(case: Path, args, tag: str) -> dict:
    runs = []
    for r in range(args.repeats):
        out = case / f"out_{r}"
        cmd = [*vagg_command(), "estimate", str(case / "spec.toml"), "--data",
               str(case / "data.csv"), "--out", str(out), "--draws", str(args.draws),
               "--tune", str(args.tune), "--chains", str(args.chains), "--seed", str(args.seed)]
        t = run_timed(cmd, timeout=args.timeout)
        if t.returncode != 0:
            raise RuntimeError(f"{tag} failed ({t.returncode}):\n{t.stderr[-3000:]}")
        row = treatment_row(out)
        diag = json.loads((out / "diagnostics.json").read_text())
        runs.append({"wall": t.wall, "peak_mib": t.peak_mib, "sampler_s":
                     sum(diag.get("wall_time_s", {}).values()), **row})
        print(f"{tag} run {r + 1}: {t.wall:.1f} s, {t.peak_mib:.0f} MiB, max r_hat "
              f"{row['max_r_hat']:.3f}, ESS(total) {row['ess_bulk']:.0f}", flush=True)
    med = {k: statistics.median(r[k] for r in runs)
           for k in ("wall", "peak_mib", "sampler_s", "ess_bulk", "r_hat", "max_r_hat",
                     "min_ess_bulk")}
    med["divergences"] = max(r["divergences"] for r in runs)
    return med


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                   help="Gaussian runs (none: pass the flag without values)")
    p.add_argument("--groups", type=int, default=280)
    p.add_argument("--data", choices=list(KINDS), default="informative")
    p.add_argument("--bernoulli-rows", type=int, nargs="*", default=[100_000],
                   help="Bernoulli runs (none: pass the flag without values)")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=None, help="default: --draws")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="medians over this many runs")
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    args.tune = args.draws if args.tune is None else args.tune

    tmp = tempfile.TemporaryDirectory(prefix="vagg_scale_") if args.workdir is None else None
    root = Path(tmp.name) if tmp else args.workdir
    print(f"# vagg-bayes estimate, {args.groups} groups ({args.data} data), varying intercept "
          f"and slope, {args.chains} chains x {args.draws} draws (tune {args.tune}), "
          f"{args.repeats} repeat(s)")
    print(f"# {machine()}; load average at start {os.getloadavg()[0]:.2f}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")

    cases = [("gaussian", n) for n in args.rows] + [("bernoulli", n) for n in
                                                    (args.bernoulli_rows or [])]
    if not args.no_warmup:
        for family in sorted({f for f, _ in cases}):
            warm = root / f"warmup_{family}"
            write_case(warm, 2_000, min(args.groups, 50), args.data, family=family)
            run_timed([*vagg_command(), "estimate", str(warm / "spec.toml"), "--data",
                       str(warm / "data.csv"), "--out", str(warm / "out"), "--draws", "100",
                       "--tune", "100"], timeout=args.timeout)
    results = []
    for family, n in cases:
        case = root / f"{family}_{n}"
        start = time.perf_counter()
        write_case(case, n, args.groups, args.data, family=family, seed=1)
        size = (case / "data.csv").stat().st_size / 2**20
        print(f"wrote {n:,} rows ({size:.0f} MiB CSV) in {time.perf_counter() - start:.1f} s",
              flush=True)
        results.append({"family": family, "rows": n, "csv_mib": size,
                        **run_case(case, args, f"{family} {n:,}")})
        (case / "data.csv").unlink()  # keep the disk use bounded

    print()
    print("| family | rows | CSV (MiB) | wall (s) | of which sampler (s) | peak memory (MiB) "
          "| ESS_bulk (total effect) | r_hat (total) | max r_hat (all) | divergences |")
    print("|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['family']} | {r['rows']:,} | {r['csv_mib']:.0f} | {r['wall']:.1f} | "
              f"{r['sampler_s']:.1f} | {r['peak_mib']:.0f} | {r['ess_bulk']:.0f} | "
              f"{r['r_hat']:.3f} | {r['max_r_hat']:.3f} | {r['divergences']} |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2))
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

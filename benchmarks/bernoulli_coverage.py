"""Coverage of the export-survival (Bernoulli) total effect over simulated firm panels.

Simulates ``--panels`` panels with :func:`vagg_bayes.data.simulate_panel` at its defaults
(persistent firm quality, city quality, city-year shocks on the mediators and on the
survival logit), fits the default Bernoulli model (firm means, city effects, city-year
effects) and prints the share of 94 % HDIs that cover the simulator's g-formula truth
(the average effect of one unit of ``va`` on the survival probability), the mean
posterior SD, the SD of the errors (posterior mean minus truth: each panel has its own
truth), their ratio and the mean error. ``--mle`` adds, side by side, the maximum
likelihood logit with city and year dummies (statsmodels, installed with linearmodels)
and its average effect, to separate the model from the sampler. ``--mediators`` fits the
simulator's six mechanisms as well and covers the total, direct and indirect effects
(natural effects by the g-formula, averaged over the control and treated versions, as the
simulator's truth is).

Run from the repository root::

    .venv/bin/python benchmarks/bernoulli_coverage.py --panels 24 --mle

The table goes into ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

CONTROLS = ("gdp_pc_ln", "region", "size_ln", "age_ln", "leverage", "ownership",
            "shock_exposure")


def mle_effect(data: pd.DataFrame) -> float:
    """Average effect of ``va`` + 1 on the survival probability, logit MLE with dummies."""
    import statsmodels.api as sm

    X = pd.get_dummies(data[["va", *[c for c in CONTROLS if c != "region"]]],
                       drop_first=True, dtype=float)
    X = pd.concat([X, pd.get_dummies(data["year"], prefix="y", drop_first=True, dtype=float),
                   pd.get_dummies(data["city_id"], prefix="c", drop_first=True, dtype=float)],
                  axis=1)
    X = sm.add_constant(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.Logit(data["survival"], X).fit(disp=0, method="newton", maxiter=100)
    shifted = X.copy()
    shifted["va"] += 1.0
    return float(np.mean(fit.predict(shifted) - fit.predict(X)))


def main() -> None:
    """Run the series and print the table."""
    from vagg_bayes.bayes.diagnostics import ConvergenceWarning
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.data.simulate import simulate_panel
    from vagg_bayes.pipeline import estimate
    from vagg_bayes.report.render import to_markdown
    from vagg_bayes.spec import Spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=24)
    parser.add_argument("--firms", type=int, default=1500)
    parser.add_argument("--cities", type=int, default=60)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--mle", action="store_true", help="add the logit MLE with dummies")
    parser.add_argument("--mediators", action="store_true",
                        help="fit the six mechanisms too: total, direct and indirect effects")
    parser.add_argument("--runs", default="benchmarks/bernoulli_coverage_runs.csv",
                        help="CSV file for the per-panel rows (overwritten)")
    args = parser.parse_args()
    spec = Spec(outcome="survival", treatment="va", controls=CONTROLS, unit="firm_id",
                group="city_id", time="year", family="bernoulli")
    effects = ("total", "direct", "indirect") if args.mediators else ("total",)
    rows = []
    start = time.perf_counter()
    for k in range(args.panels):
        seed = args.first_seed + k
        data, truth = simulate_panel(n_firms=args.firms, n_cities=args.cities,
                                     n_provinces=10, seed=seed)
        true_total = truth["survival"]["total"]
        if args.mediators:
            names = (key.split(":", 1)[1] for key in truth["survival"]
                     if key.startswith("indirect:"))
            mediators = tuple(sorted(n for n in names if n in data.columns))
            spec = spec.with_(mediators=mediators)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            result = estimate(data, spec, settings=SamplerSettings(random_seed=seed))
        failed = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        summary = result.summary("effects").set_index("effect")
        for name in effects:
            row, true = summary.loc[name], truth["survival"][name]
            rows.append({"model": "default (Bayes)", "effect": name, "panel": seed,
                         "truth": true, "mean": row["mean"], "sd": row["sd"],
                         "covered": bool(row["hdi_low"] <= true <= row["hdi_high"]),
                         "error": row["mean"] - true, "diagnostics_failed": failed})
        row = summary.loc["total"]
        if args.mle:
            est = mle_effect(data)
            rows.append({"model": "logit MLE, city and year dummies", "effect": "total",
                         "panel": seed,
                         "truth": true_total, "mean": est, "sd": np.nan, "covered": np.nan,
                         "error": est - true_total, "diagnostics_failed": False})
        print(f"panel {k + 1}/{args.panels} done ({time.perf_counter() - start:.0f} s): "
              f"truth {true_total:.4f}, estimate {row['mean']:.4f} (sd {row['sd']:.4f})",
              flush=True)
    frame = pd.DataFrame(rows)
    table = frame.groupby(["model", "effect"], sort=False).agg(
        coverage=("covered", "mean"), mean_posterior_sd=("sd", "mean"),
        sd_of_errors=("error", "std"), mean_error=("error", "mean"),
        failed_diagnostics=("diagnostics_failed", "sum"))
    table["sd_ratio"] = table["mean_posterior_sd"] / table["sd_of_errors"]
    table["mean_error_se"] = table["sd_of_errors"] / np.sqrt(args.panels)
    print(f"\n{args.panels} panels of simulate_panel ({args.firms} firms, {args.cities} cities, "
          f"defaults), effects of va on survival, 94 % HDI; "
          f"{time.perf_counter() - start:.0f} s in all\n")
    print(to_markdown(table.reset_index(), 4))
    frame.to_csv(args.runs, index=False)


if __name__ == "__main__":
    main()

"""unobserved_common_cause: Cinelli-Hazlett robustness read off the posterior."""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.design import build_design
from vagg_bayes.refute.confounding import (
    ALPHA,
    Benchmark,
    Path,
    adjust,
    benchmark_bound,
    judge,
    regression_view,
    robustness_value,
)
from vagg_bayes.spec import Spec

# Cinelli & Hazlett (2020), Darfur example: t of "directly harmed" and its residual df;
# "female" as benchmark (partial R2 0.9164 % with the treatment, 10.903 % with the outcome)
DARFUR = {"estimate": 0.09731, "se": 0.02326, "dof": 783, "t": 4.18445}


def test_robustness_values_match_the_published_darfur_numbers():
    assert robustness_value(DARFUR["t"], DARFUR["dof"]) == pytest.approx(0.1388, abs=5e-4)
    assert robustness_value(DARFUR["t"], DARFUR["dof"], alpha=0.05) == pytest.approx(
        0.0763, abs=5e-4)
    # the 94 % interval needs a weaker confounder than the 95 % one, more than the point
    rv94 = robustness_value(DARFUR["t"], DARFUR["dof"], alpha=ALPHA)
    assert 0.0763 < rv94 < 0.1388
    assert robustness_value(1.0, 783, alpha=0.05) == 0.0  # not significant: nothing to do


@pytest.mark.parametrize("k, adjusted", [(1, 0.0752), (2, 0.0529), (3, 0.0304)])
def test_benchmark_bounds_reproduce_the_darfur_table(k, adjusted):
    r2dz, r2yz = benchmark_bound(0.009164, 0.10903, k)
    assert r2dz == pytest.approx(k * 0.00925, rel=0.01)
    assert r2yz == pytest.approx(k * 0.1247, rel=0.02)
    est, _ = adjust(DARFUR["estimate"], DARFUR["se"], DARFUR["dof"], r2dz, r2yz)
    assert est == pytest.approx(adjusted, abs=6e-4)


def test_an_impossible_benchmark_multiple_has_no_bound():
    assert benchmark_bound(0.6, 0.1, kd=2) is None


def _panel(seed=0, n_units=40, n_times=5):
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_times)
    time = np.tile(np.arange(n_times), n_units)
    quality = rng.normal(size=n_units)[unit]
    x = rng.normal(size=unit.size) + quality
    d = 0.5 * x + quality + rng.normal(size=unit.size)
    y = 0.3 * d + 0.4 * x + 2 * quality + 0.2 * time + rng.normal(size=unit.size)
    return pd.DataFrame({"shop": unit, "term": time, "region": unit % 4, "dose": d,
                         "covar": x, "score": y})


def _lsdv_partial_r2(frame, target, regressors, block):
    """Partial R2 of ``block`` for ``target`` from dummy-variable regressions."""
    def rss(cols):
        X = pd.get_dummies(frame[["shop", "term"]].astype(str), drop_first=False, dtype=float)
        X = pd.concat([X, frame[cols]], axis=1).to_numpy(dtype=float)
        y = frame[target].to_numpy(dtype=float)
        coef = np.linalg.lstsq(X, y, rcond=None)[0]
        return float(((y - X @ coef) ** 2).sum())

    return 1 - rss(regressors) / rss([c for c in regressors if c != block])


def test_partial_r2_is_within_units_as_the_models_unit_effects():
    frame = _panel()
    spec = Spec(outcome="score", treatment="dose", controls=("covar",), unit="shop",
                group="region", time="term")
    design = build_design(frame, spec)
    assert design.unit_effects == "within"
    k = design.treatment_index
    columns = [j for j in range(design.p) if j != k]
    blocks = {"covar": [design.terms.index("covar")]}
    dof, (bench,), absorbed, how = regression_view(design, design.y, k, columns, blocks)
    assert "within units" in how and absorbed == []
    r2d = _lsdv_partial_r2(frame, "dose", ["covar"], "covar")
    r2y = _lsdv_partial_r2(frame, "score", ["dose", "covar"], "covar")
    assert bench.r2dxj_x == pytest.approx(r2d, rel=1e-6)
    assert bench.r2yxj_dx == pytest.approx(r2y, rel=1e-6)
    # rows - units - (treatment, control, 4 time indicators)
    assert dof == len(frame) - 40 - 6
    # pooled (not demeaned) partial R2 would be far larger: unit quality drives x and d
    pooled = np.corrcoef(frame["covar"], frame["dose"])[0, 1] ** 2
    assert bench.r2dxj_x < 0.5 * pooled


def test_a_control_constant_within_units_is_absorbed_not_a_benchmark():
    frame = _panel().assign(size=lambda f: (f["shop"] % 7).astype(float))
    spec = Spec(outcome="score", treatment="dose", controls=("covar", "size"), unit="shop",
                group="region", time="term")
    design = build_design(frame, spec)
    k = design.treatment_index
    columns = [j for j in range(design.p) if j != k]
    blocks = {c: [design.terms.index(c)] for c in ("covar", "size")}
    _, benchmarks, absorbed, _ = regression_view(design, design.y, k, columns, blocks)
    assert absorbed == ["size"]
    assert [b.name for b in benchmarks] == ["covar"]


def test_judge_states_the_rule_and_fails_only_when_k1_reaches_zero():
    rng = np.random.default_rng(1)
    bench = (Benchmark("covar", 0.2, 0.2),)
    weak = Path("d -> y", 0.2, 0.05, 500.0, bench)
    strong = Path("d -> y", 1.0, 0.05, 500.0, bench)
    row_weak, _ = judge("total", rng.normal(0.2, 0.05, 4000), [weak], "no demeaning")
    row_strong, _ = judge("total", rng.normal(1.0, 0.05, 4000), [strong], "no demeaning")
    assert row_weak.verdict == "fail" and row_strong.verdict == "pass"
    assert "1 x as strong as the strongest observed control" in row_weak.detail
    assert "k = 1 x covar" in row_weak.detail
    assert row_weak.hdi_low <= 0  # the adjusted interval reaches (here: crosses) zero
    assert row_strong.hdi_low > 0 and row_strong.refuted_estimate < row_strong.estimate
    # k*: below 1 for the fragile effect, above 1 for the robust one
    assert "k* = " in row_weak.detail and "k* = " in row_strong.detail
    covering, _ = judge("total", rng.normal(0.0, 0.05, 4000),
                        [Path("d -> y", 0.0, 0.05, 500.0, bench)], "no demeaning")
    assert covering.verdict == "inconclusive"
    unbenchmarked, _ = judge("total", rng.normal(1.0, 0.05, 4000),
                             [Path("d -> y", 1.0, 0.05, 500.0, ())], "no demeaning")
    assert unbenchmarked.verdict == "inconclusive" and "RV = " in unbenchmarked.detail


def test_an_indirect_effect_is_as_fragile_as_its_weaker_path():
    rng = np.random.default_rng(2)
    bench = (Benchmark("covar", 0.15, 0.15),)
    a = Path("d -> m", 0.8, 0.05, 500.0, bench)
    b_weak = Path("m -> y", 0.15, 0.05, 500.0, bench)
    b_strong = Path("m -> y", 0.9, 0.05, 500.0, bench)
    draws = rng.normal(0.8, 0.05, 4000) * rng.normal(0.15, 0.05, 4000)
    fragile, records = judge("indirect:m", draws, [a, b_weak], "no demeaning")
    assert fragile.verdict == "fail"
    assert {r["path"] for r in records} == {"d -> m", "m -> y"}
    draws = rng.normal(0.8, 0.05, 4000) * rng.normal(0.9, 0.05, 4000)
    robust, _ = judge("indirect:m", draws, [a, b_strong], "no demeaning")
    assert robust.verdict == "pass"
    # both paths pulled towards zero: the adjusted product is positive but smaller
    assert 0 < robust.refuted_estimate < 0.6 < robust.estimate


# -- acceptance on simulated firm panels (real sampling) ---------------------------------------
def _firm_panel(effect, confounding, seed, n_cities=16, n_firms=8, n_years=4):
    """Simulate firms in cities over years with an omitted confounder.

    ``confounding`` is the strength of an omitted, time-varying confounder of
    ``invest`` (treatment) and ``export_share`` (outcome); the observed control
    ``liquidity`` confounds them with strength 0.7.
    """
    rng = np.random.default_rng(seed)
    F = n_cities * n_firms
    firm = np.repeat(np.arange(F), n_years)
    city = firm // n_firms
    year = np.tile(np.arange(n_years), F)
    n = firm.size
    liquidity = rng.normal(size=n) + 0.5 * rng.normal(size=F)[firm]
    hidden = rng.normal(size=n)
    invest = 0.7 * liquidity + confounding * hidden + rng.normal(size=n)
    out = (effect * invest + 0.7 * liquidity + confounding * hidden
           + 0.5 * rng.normal(size=F)[firm] + 0.3 * rng.normal(size=n_cities)[city]
           + rng.normal(size=n))
    return pd.DataFrame({"plant_no": firm, "prefecture": city, "yr": 2010 + year,
                         "invest": invest, "liquidity": liquidity, "export_share": out})


@pytest.fixture(scope="module")
def confounded_and_clean():
    import warnings

    from vagg_bayes import Analysis
    from vagg_bayes.bayes.diagnostics import ConvergenceWarning
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.refute.confounding import unobserved_common_cause

    spec = Spec(outcome="export_share", treatment="invest", controls=("liquidity",),
                unit="plant_no", group="prefecture", time="yr")
    analysis = Analysis(spec, SamplerSettings(draws=300, tune=300, chains=2, random_seed=3))
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # no true effect: the estimate comes from an omitted confounder weaker than the
        # observed control
        confounded = analysis.fit(_firm_panel(effect=0.0, confounding=0.5, seed=11))
        out["confounded"] = _outcome(unobserved_common_cause, analysis, confounded)
        # a strong effect and no omitted confounder (same compiled model, frozen priors)
        clean = analysis.refit(_firm_panel(effect=1.0, confounding=0.0, seed=12))
        out["clean"] = _outcome(unobserved_common_cause, analysis, clean)
    return out


def _outcome(test, analysis, result):
    from vagg_bayes.refute.base import Context, Options

    return test(Context(analysis, result, pd.DataFrame(), Options()))


@pytest.mark.slow
def test_an_estimate_made_by_an_omitted_confounder_is_fragile(confounded_and_clean):
    outcome = confounded_and_clean["confounded"]
    (row,) = outcome.rows
    assert row.refuter == "unobserved_common_cause" and row.effect == "total"
    assert row.estimate > 0.15  # the confounded estimate is clearly positive ...
    assert row.verdict == "fail"  # ... and explained away by a confounder like liquidity
    assert row.hdi_low <= 0 or row.refuted_estimate <= 0
    assert "demeaned within units" in row.detail
    table = outcome.notes["table"]
    assert table.loc[0, "benchmark"] == "liquidity"
    assert table.loc[0, "k_star"] < 1


@pytest.mark.slow
def test_a_strong_unconfounded_effect_is_robust(confounded_and_clean):
    (row,) = confounded_and_clean["clean"].rows
    assert row.verdict == "pass"
    assert row.hdi_low > 0
    assert confounded_and_clean["clean"].notes["table"].loc[0, "k_star"] > 1

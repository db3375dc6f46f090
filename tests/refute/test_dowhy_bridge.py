"""The DoWhy bridge: DoWhy's own refuters run on the Bayesian estimator."""

import copy
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.spec import Spec

SPEC = Spec(outcome="sales_growth", treatment="training", controls=("firm_age",),
            group="county")


def _workshops(seed=0, n=300, n_counties=15, effect=0.6):
    rng = np.random.default_rng(seed)
    county = rng.integers(0, n_counties, n)
    age = rng.normal(size=n)
    training = 0.5 * age + rng.normal(size=n)
    growth = (effect * training + 0.5 * age + 0.3 * rng.normal(size=n_counties)[county]
              + rng.normal(size=n))
    return pd.DataFrame({"county": county, "firm_age": age, "training": training,
                         "sales_growth": growth})


def test_importing_the_bridge_does_not_import_dowhy():
    code = ("import sys, vagg_bayes.refute.dowhy_bridge as b; "
            "assert 'dowhy' not in sys.modules, 'dowhy imported'; "
            "assert b.DEFAULT_REFUTERS")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_refuters_are_refused_before_any_fit():
    from vagg_bayes.refute.dowhy_bridge import dowhy_refutations

    class Target:
        spec, settings = SPEC, None

    with pytest.raises(ValueError, match="placebo_treatment"):
        dowhy_refutations(Target(), _workshops(), ["placebo"])


def test_the_adjustment_graph_gives_dowhy_the_spec_controls_as_backdoor_set():
    from vagg_bayes.refute.dowhy_bridge import identify

    model, estimand, where = identify(SPEC, _workshops())
    assert estimand.get_adjustment_set() == ["firm_age"]
    assert "adjustment graph" in where


def test_the_spec_dag_is_used_when_it_identifies_the_effect(tmp_path):
    from vagg_bayes.refute.dowhy_bridge import identify

    dag = tmp_path / "dag.dot"
    dag.write_text("digraph { firm_age -> {training sales_growth}; region -> training; "
                   "training -> sales_growth; }")
    data = _workshops().assign(region=0.0)
    model, estimand, where = identify(SPEC.with_(graph=dag), data)
    assert "DAG" in where
    assert estimand.get_adjustment_set() == ["firm_age"]


@pytest.fixture(scope="module")
def bridge_run():
    from vagg_bayes import Analysis
    from vagg_bayes.bayes.diagnostics import ConvergenceWarning
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.refute.dowhy_bridge import dowhy_refutations

    data = _workshops()
    analysis = Analysis(SPEC, SamplerSettings(draws=200, tune=300, chains=2, random_seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = analysis.fit(data)
        rows = dowhy_refutations(
            analysis, data,
            ["placebo_treatment", "random_common_cause", "data_subset", "dummy_outcome"],
            simulations=2, seed=3)
    return result, {r.refuter: r for r in rows}


@pytest.mark.slow
def test_dowhy_refuters_run_through_the_bridge(bridge_run):
    result, rows = bridge_run
    assert list(rows) == ["dowhy:placebo_treatment", "dowhy:random_common_cause",
                          "dowhy:data_subset", "dowhy:dummy_outcome"]
    real = float(np.mean(result.effect_draws["total"]))
    for row in rows.values():
        assert row.effect == "total"
        assert row.estimate == pytest.approx(real, rel=1e-9)  # DoWhy's first fit = ours
        assert row.n_refits == 2 and row.verdict == "pass", row.detail


@pytest.mark.slow
def test_placebo_and_dummy_outcome_find_no_effect(bridge_run):
    result, rows = bridge_run
    for name in ("dowhy:placebo_treatment", "dowhy:dummy_outcome"):
        row = rows[name]
        assert abs(row.refuted_estimate) < 0.25 * row.estimate  # estimate ~0.6
        assert row.hdi_low <= 0 <= row.hdi_high
        assert "covers 0" in row.detail


@pytest.mark.slow
def test_random_common_cause_really_adds_a_control(bridge_run):
    _, rows = bridge_run
    row = rows["dowhy:random_common_cause"]
    # the estimator read the adjustment set from the estimand DoWhy changed
    assert "controls added: w_random" in row.detail
    assert row.refuted_estimate == pytest.approx(row.estimate, abs=0.1)


@pytest.mark.slow
def test_the_estimator_keeps_no_fitted_model_and_unpacks_init_params(bridge_run):
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.bayes.diagnostics import ConvergenceWarning
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.refute.dowhy_bridge import BayesianEstimator, identify
    from vagg_bayes.report.result import EstimateResult

    data = _workshops()
    model, estimand, _ = identify(SPEC, data)
    settings = SamplerSettings(draws=100, tune=100, chains=1, random_seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # the path DoWhy users take: init_params arrives as one keyword, unexpanded
        estimate = model.estimate_effect(
            estimand, method_name="backdoor.vagg_bayes.refute.dowhy_bridge.BayesianEstimator",
            method_params={"init_params": {"spec": SPEC, "settings": settings}})
    estimator = estimate.estimator
    assert isinstance(estimator, BayesianEstimator)
    assert 0.3 < estimate.value < 0.9
    assert estimate.posterior_sd > 0 and estimate.hdi[0] < estimate.value < estimate.hdi[1]
    twice = estimator.estimate_effect(data, treatment_value=2, control_value=0)
    assert twice.value == pytest.approx(2 * estimate.value)
    clone = copy.deepcopy(estimator)
    held = [type(v).__name__ for v in vars(clone).values()
            if isinstance(v, (Analysis, EstimateResult, np.ndarray))]
    assert held == []

"""Placebo-type tests, their pass rules, and the acceptance checks.

Permutations where the treatment is assigned, leads, permuted mediators, simulated null
outcomes; the acceptance checks on panels with and without an effect.
"""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.refute.base import Options
from vagg_bayes.refute.common import assignment_level
from vagg_bayes.refute.judge import randomization_row, zero_row
from vagg_bayes.refute.placebo import mediator_placebo, permutation_plan
from vagg_bayes.refute.runner import RefitSummary
from vagg_bayes.refute.transforms import AddLead, PermuteRows, ReassignSeries, seed_key
from vagg_bayes.spec import Spec


# ---------------------------------------------------------------- permutations
def test_few_groups_are_enumerated_exactly():
    maps, exact, space = permutation_plan((1, 2, 3, 4), None, 100, seed=0)
    assert exact and space == 24 and len(maps) == 23
    assert len({m for m in maps}) == 23
    for m in maps:
        assert sorted(d for _, d in m) == [1, 2, 3, 4]
        assert any(g != d for g, d in m)  # the real assignment is not a placebo


def test_permutations_stay_within_strata():
    strata = {1: "a", 2: "a", 3: "b", 4: "b", 5: "b", 6: "c"}
    maps, exact, space = permutation_plan(tuple(strata), strata, 100, seed=0)
    assert exact and space == 2 * 6 * 1 and len(maps) == 11
    maps, exact, _ = permutation_plan(tuple(strata), strata, 5, seed=0)
    assert not exact and len(maps) == 5
    for m in maps:
        assert all(strata[g] == strata[d] for g, d in m)


def test_random_permutations_are_seeded_and_replicate_k_does_not_depend_on_n():
    labels = tuple(range(12))
    few, exact, _ = permutation_plan(labels, None, 5, seed=3)
    many, _, _ = permutation_plan(labels, None, 20, seed=3)
    other, _, _ = permutation_plan(labels, None, 5, seed=4)
    assert not exact and many[:5] == few and other != few
    assert len(set(many)) == 20


def _cells():
    # three cities over three years, a city-year treatment; city 2 misses 2001
    rows = [(c, t, 10 * c + t - 2000) for c in range(3) for t in (2000, 2001, 2002)
            if not (c == 2 and t == 2001)]
    frame = pd.DataFrame(rows, columns=["city", "year", "dose"])
    frame = frame.loc[frame.index.repeat(2)].reset_index(drop=True)  # two firms a cell
    frame["firm"] = np.arange(len(frame)) % 2 + 2 * frame["city"]
    return frame


def test_each_city_gets_its_donors_series_aligned_on_years():
    frame = _cells()
    out = ReassignSeries("dose", "city", "year", ((0, 1), (1, 2), (2, 0)))(frame)
    got = out.groupby(["city", "year"])["dose"].first()
    assert got[(0, 2000)] == 10 and got[(0, 2002)] == 12  # city 1's series
    assert got[(1, 2001)] == 20  # city 2 has no 2001: its 2000 value (nearest earlier)
    assert got[(2, 2002)] == 2
    assert frame["dose"].tolist() == _cells()["dose"].tolist()  # input untouched


def test_lead_is_the_next_periods_value_and_rows_without_a_future_are_dropped():
    frame = _cells()
    out = AddLead("dose", "dose_lead1", "city", "year", 1)(frame)
    assert set(out["year"]) == {2000, 2001}
    row = out[(out["city"] == 1) & (out["year"] == 2000)].iloc[0]
    assert row["dose_lead1"] == 11
    assert not ((out["city"] == 2) & (out["year"] == 2000)).any()  # 2001 missing


def test_row_permutation_keeps_each_cells_values():
    frame = _cells().assign(m=np.arange(16.0))
    out = PermuteRows("m", ("city", "year"), seed_key(np.random.SeedSequence(1)))(frame)
    before = frame.groupby(["city", "year"])["m"].apply(sorted)
    after = out.groupby(["city", "year"])["m"].apply(sorted)
    assert before.equals(after)
    assert not np.array_equal(out["m"], frame["m"])


def test_assignment_level_and_mediator_placebo_follow_the_level():
    frame = _cells().assign(m_city=lambda d: d["city"] * 1.5 + d["year"] * 0.1,
                            m_firm=np.arange(16.0))
    spec = Spec(outcome="y", treatment="dose", mediators=("m_city", "m_firm"), group="city",
                time="year", unit="firm")
    assert assignment_level(frame, spec, "dose").kind == "group"
    assert assignment_level(frame, spec, "m_firm").kind == "unit"
    chain, said = mediator_placebo(frame, spec, seed=0, index=0)
    kinds = [type(part).__name__ for part in chain.parts]
    assert kinds == ["ReassignSeries", "PermuteRows"]
    assert "city-level" in said[0] and "cell" in said[1]


# ---------------------------------------------------------------- pass rules
def _summaries(means, sd=0.05):
    return [RefitSummary("t", k, {"total": {"mean": float(m), "sd": sd,
                                            "hdi_low": m - 2 * sd, "hdi_high": m + 2 * sd}},
                         diagnostics_passed=True)
            for k, m in enumerate(means)]


REAL = {"mean": 0.5, "sd": 0.05, "hdi_low": 0.4, "hdi_high": 0.6}


def _perm(means, **kw):
    kw = {"exact": False, "n_space": len(means), "alpha": 0.05,
          "require_diagnostics": True, "what": "test", **kw}
    return randomization_row("placebo_permute_groups", "total", REAL, _summaries(means), **kw)


def test_randomization_rule_passes_fails_and_says_when_it_cannot_decide():
    rng = np.random.default_rng(0)
    row = _perm(rng.normal(0, 0.1, 100))
    assert row.verdict == "pass" and row.p_value == pytest.approx(1 / 101)
    assert row.mc_se == pytest.approx(math.sqrt(row.p_value * (1 - row.p_value) / 100))
    assert "Rule:" in row.detail and row.n_refits == 100
    row = _perm(rng.normal(0, 0.6, 100))  # the real estimate is ordinary among placebos
    assert row.verdict == "fail" and row.p_value > 0.3
    row = _perm(rng.normal(0, 0.1, 20))  # too few placebos to show p < 0.05
    assert row.verdict == "inconclusive" and "at least 6" in row.detail
    row = _perm(rng.normal(0, 0.1, 23), exact=True)  # all 24 assignments of four cities
    assert row.verdict == "pass" and row.mc_se == 0 and row.p_value == pytest.approx(1 / 24)
    row = _perm(rng.normal(0, 0.1, 5), exact=True)  # 3! assignments: p >= 1/6
    assert row.verdict == "inconclusive" and "cannot be shown" in row.detail


def test_randomization_rule_is_inconclusive_when_most_refits_failed():
    summaries = _summaries(np.zeros(100))
    summaries = [s if k < 40 else RefitSummary("t", k, error="boom") for k, s in
                 enumerate(summaries)]
    row = randomization_row("p", "total", REAL, summaries, exact=False, n_space=100,
                            alpha=0.05, require_diagnostics=True, what="x")
    assert row.verdict == "inconclusive" and row.n_failed == 60
    assert "most refits failed" in row.detail


def test_zero_rule_pools_the_replicates_draws():
    rng = np.random.default_rng(1)
    near = [RefitSummary("t", k, {"total": {"mean": 0.0}}, {"total": rng.normal(0, 1, 400)},
                         True) for k in range(2)]
    far = [RefitSummary("t", k, {"total": {"mean": 3.0}}, {"total": rng.normal(3, 1, 400)},
                        True) for k in range(2)]
    assert zero_row("d", "total", REAL, near, require_diagnostics=True, what="x").verdict \
        == "pass"
    row = zero_row("d", "total", REAL, far, require_diagnostics=True, what="x")
    assert row.verdict == "fail" and row.hdi_low > 0 and "covers zero" in row.detail
    failed_diag = [RefitSummary("t", 0, {"total": {"mean": 0.0}},
                                {"total": rng.normal(0, 1, 400)}, False)]
    assert zero_row("d", "total", REAL, failed_diag, require_diagnostics=True,
                    what="x").verdict == "inconclusive"
    assert zero_row("d", "total", REAL, failed_diag, require_diagnostics=False,
                    what="x").verdict == "pass"


# ---------------------------------------------------------------- acceptance (real fits)
SETTINGS = SamplerSettings(draws=150, tune=200, chains=2, random_seed=11)
QUICK = Options(replicates=2, require_diagnostics=False, seed=5)


def _spec(**changes):
    base = Spec(outcome="exp_res", treatment="dig", controls=("scale_ln",), group="town",
                time="period", group_time_effects=False)
    return base.with_(**changes)


def _run(data, spec, tests, options=QUICK):
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.refute import refute

    analysis = Analysis(spec, SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = analysis.fit(data, tables=False)
    table = refute(analysis, data, result=result, tests=tests, options=options,
                   progress=False)
    return result, table.summary().set_index(["refuter", "effect"])


@pytest.mark.slow
def test_on_a_panel_without_effect_no_placebo_or_dummy_test_claims_one(firm_panel_factory):
    data, truth = firm_panel_factory(n_towns=4, n_plants=12, n_periods=6, seed=21,
                                     direct=0.0, a=0.0)
    assert truth["total"] == 0
    result, table = _run(data, _spec(),
                         "placebo_permute_groups,placebo_time,dummy_outcome")
    total = result.summary("effects").set_index("effect").loc["total"]
    assert total["hdi_low"] < 0 < total["hdi_high"]  # the estimate covers zero
    perm = table.loc[("placebo_permute_groups", "total")]
    assert perm["n_refits"] == 23 and "exact enumeration" in perm["detail"]
    assert perm["verdict"] != "pass" and perm["p_value"] > 0.05
    assert perm["hdi_low"] < 0 < perm["hdi_high"]  # the placebo distribution is centred
    for test in ("placebo_time", "dummy_outcome"):
        row = table.loc[(test, "total")]
        assert row["verdict"] == "pass", row["detail"]
        assert row["hdi_low"] < 0 < row["hdi_high"]


@pytest.mark.slow
def test_with_a_real_effect_the_placebo_tests_pass(firm_panel_factory):
    data, truth = firm_panel_factory(n_towns=4, n_plants=12, n_periods=6, seed=22,
                                     direct=0.4, a=0.4)
    rng = np.random.default_rng(0)
    town = data["town"].to_numpy()
    data = data.assign(other_res=0.3 * data["scale_ln"] + rng.normal(size=4)[town]
                       + rng.normal(size=len(data)))
    result, table = _run(
        data, _spec(negative_control="other_res"),
        "placebo_permute_groups,placebo_time,dummy_outcome,negative_control_outcome")
    total = result.summary("effects").set_index("effect").loc["total"]
    assert total["hdi_low"] > 0
    perm = table.loc[("placebo_permute_groups", "total")]
    assert perm["verdict"] == "pass", perm["detail"]
    assert perm["p_value"] == pytest.approx(1 / 24)
    for test in ("placebo_time", "dummy_outcome", "negative_control_outcome"):
        row = table.loc[(test, "total")]
        assert row["verdict"] == "pass", (test, row["detail"])
    # the dummy outcome's estimate is far from the real one (the effect was removed)
    dummy = table.loc[("dummy_outcome", "total")]
    assert abs(dummy["refuted_estimate"]) < total["mean"] / 2


@pytest.mark.slow
def test_a_permuted_mediator_carries_no_indirect_effect(firm_panel_factory):
    data, truth = firm_panel_factory(n_towns=8, n_plants=8, n_periods=4, seed=23)
    result, table = _run(data, _spec(mediators=("cost_eff",)), "placebo_mediator")
    real = result.summary("effects").set_index("effect").loc["indirect:cost_eff"]
    assert real["hdi_low"] > 0  # the real indirect effect is clearly there
    row = table.loc[("placebo_mediator", "indirect:cost_eff")]
    assert row["verdict"] == "pass", row["detail"]
    assert "cell" in row["detail"] and row["n_refits"] == 2
    assert ("placebo_mediator", "total") not in table.index  # only indirect effects


def test_dummy_outcomes_hold_the_treatment_and_draw_every_group_anew(monkeypatch):
    from types import SimpleNamespace

    import vagg_bayes.refute.placebo as placebo

    seen = []

    def fake_predict(result, rows, seed):
        seen.append(rows)
        return np.tile(np.arange(len(rows), dtype=float), (4, 1)) + np.arange(4)[:, None]

    monkeypatch.setattr(placebo, "_predict_outcome", fake_predict)
    frame = _cells().assign(y=0.0, m=np.arange(16.0))
    spec = Spec(outcome="y", treatment="dose", mediators=("m",), group="city", time="year",
                unit="firm")
    result = SimpleNamespace(effect_draws={"total": np.zeros((2, 2))})
    outcomes = placebo.null_outcomes(result, frame, spec, seed=0, n=2)
    rows = pd.concat(seen)
    assert rows["dose"].nunique() == 1 and rows["m"].nunique() == 1  # held at the mean
    # every city is new to the fit: its effects come from the population, not from the
    # posterior of the real data (which carries part of the treatment's effect)
    assert rows["city"].str.endswith("~simulated").all()
    assert sorted(rows.index) == list(range(16))  # every row once, cities kept whole
    assert all(len(y) == 16 for y in outcomes)


@pytest.mark.slow
def test_time_placebo_drops_a_control_that_varies_only_in_the_last_period(firm_panel_factory):
    # five periods: the lead drops the last one, where alone 'hit' (a shock exposure)
    # varies; on the led rows it is constant, so the refit must go on without it
    data, _ = firm_panel_factory(n_towns=4, n_plants=12, n_periods=5, seed=24,
                                 direct=0.4, a=0.4)
    rng = np.random.default_rng(1)
    last = data["period"] == data["period"].max()
    data = data.assign(hit=np.where(last, rng.uniform(size=len(data)), 0.0))
    _, table = _run(data, _spec(controls=("scale_ln", "hit")), "placebo_time")
    row = table.loc[("placebo_time", "total")]
    assert row["verdict"] == "pass", row["detail"]
    assert row["n_failed"] == 0 and row["hdi_low"] < 0 < row["hdi_high"]
    assert "'hit' dropped from the placebo refit" in row["detail"]
    assert "'scale_ln'" not in row["detail"]  # a control that still varies is kept

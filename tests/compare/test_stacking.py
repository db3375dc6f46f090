"""compare() on fake results: the table, the comparability checks, the averaged effects."""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.compare import Comparison, compare
from vagg_bayes.compare.stacking import COLUMNS, _allocate
from vagg_bayes.errors import DataError, SpecError
from vagg_bayes.spec import Spec

POOLED = Spec(outcome="sales", treatment="lux")
GROUPED = Spec(outcome="sales", treatment="lux", group="shop")


def test_table_columns_ranks_and_weights(compare_frame, result_factory):
    data = compare_frame()
    results = {"pooled": result_factory(POOLED, data),
               "grouped": result_factory(GROUPED, data, seed=2)}
    for unit, n_units in (("group", 12), ("row", 180)):
        c = compare(results, unit)
        t = c.table
        assert list(t.columns[:len(COLUMNS)]) == COLUMNS
        assert sorted(t["rank"]) == [0, 1] and t["elpd_loo"].is_monotonic_decreasing
        assert t["weight"].sum() == pytest.approx(1.0)
        assert (t["n_units"] == n_units).all() and (t["loo"] == unit).all()
        assert (t["method"] == "psis").all() and t["elpd_diff"].iloc[0] == 0
    # the pooled model's group value is the sum of its rows' values (the note says so)
    assert any("sum of" in n for n in compare(results, "group").notes)


def test_group_loo_of_a_pooled_model_sums_its_rows(compare_frame, result_factory):
    from vagg_bayes.compare.loo import pointwise, row_labels

    data = compare_frame()
    pooled = result_factory(POOLED, data)
    grouped = result_factory(GROUPED, data, seed=2)
    labels = row_labels(grouped)
    ll = pointwise(pooled, "pooled", "group", labels, np.arange(12))
    rows = np.asarray(pooled.fits["outcome"].idata.log_likelihood["y"])
    np.testing.assert_allclose(ll[..., 3], rows[..., labels == 3].sum(-1))


def test_models_of_different_outcomes_or_rows_are_not_comparable(compare_frame,
                                                                 result_factory):
    data = compare_frame()
    base = result_factory(GROUPED, data)
    other = result_factory(GROUPED.with_(outcome="sales2"), data)
    with pytest.raises(SpecError, match="not comparable.*same outcome and family"):
        compare({"a": base, "b": other})
    fewer = result_factory(GROUPED, data.iloc[:150])
    with pytest.raises(DataError, match=r"different rows \(180 and 150 rows\).*same data"):
        compare({"a": base, "b": fewer})
    with pytest.raises(SpecError, match="at least two"):
        compare({"a": base})


def test_the_loo_unit_must_exist_in_every_model(compare_frame, result_factory):
    data = compare_frame()
    nested = result_factory(GROUPED, data, row_loglik=False)
    base = result_factory(GROUPED, data, seed=3)
    with pytest.raises(SpecError, match=r"'nested' cannot give a per-row.*--loo group"):
        compare({"base": base, "nested": nested}, "row")
    compare({"base": base, "nested": nested}, "group")  # the group unit is fine
    pooled = {"a": result_factory(POOLED, data), "b": result_factory(POOLED, data, seed=4)}
    with pytest.raises(SpecError, match="--loo-group COL"):
        compare(pooled, "group")
    c = compare(pooled, "group", group="shop", data=data)
    assert c.group == "shop" and (c.table["n_units"] == 12).all()
    with pytest.raises(SpecError, match="loo must be one of"):
        compare(pooled, "city")


def _comparison(results, weights):
    table = pd.DataFrame({"model": list(results), "weight": weights})
    return Comparison(table=table, loo={}, results=results, unit="group", group="shop")


def test_averaged_effects_mix_draws_by_weight(compare_frame, result_factory):
    data = compare_frame()
    low = result_factory(GROUPED, data, effect=-1.0)
    high = result_factory(POOLED, data, effect=1.0, seed=5)
    high = type(high)(spec=high.spec, settings=high.settings, fits=high.fits,
                      effect_draws={**high.effect_draws, "extra": high.effect_draws["total"]})
    avg = _comparison({"low": low, "high": high}, [0.25, 0.75]).averaged_effects()
    assert avg.columns[:8].tolist() == ["effect", "mean", "sd", "hdi_low", "hdi_high",
                                        "prob_positive", "r_hat", "ess_bulk"]
    row = avg.set_index("effect").loc["total"]
    means = [np.mean(low.effect_draws["total"]), np.mean(high.effect_draws["total"])]
    assert row["mean"] == pytest.approx(0.25 * means[0] + 0.75 * means[1], abs=0.01)
    assert row["prob_positive"] == pytest.approx(0.75, abs=0.02)
    extra = avg.set_index("effect").loc["extra"]
    assert extra["weight_covered"] == pytest.approx(0.75) and extra["models"] == "high"
    only = _comparison({"low": low, "high": high}, [1.0, 0.0]).averaged_effects()
    assert only.set_index("effect").loc["total", "mean"] == pytest.approx(means[0])


def test_allocate_counts():
    assert _allocate(np.array([0.25, 0.75]), 400).tolist() == [100, 300]
    assert _allocate(np.array([1 / 3, 1 / 3, 1 / 3]), 100).sum() == 100

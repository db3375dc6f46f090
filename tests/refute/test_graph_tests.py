"""graph_independence: the DAG's implied conditional independences against the data."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.graph import parse_dot
from vagg_bayes.refute.base import Context, Options
from vagg_bayes.refute.graph_tests import (
    check_independences,
    graph_independence,
    implied_independences,
)
from vagg_bayes.spec import Spec

# The data below follow TRUE_DAG: a persistent latent outlet quality (unit-level) raises
# footfall and margin; rainfall -> footfall -> sales <- price, price -> margin -> sales,
# and promo -> margin (the arrow MISSING_ARROW leaves out).
TRUE_DAG = """
digraph shops {
    quality [observed="no", level="unit"];
    quality -> {footfall margin};
    rainfall -> footfall -> sales;
    price -> {sales margin};
    margin -> sales;
    promo -> margin;
}
"""
MISSING_ARROW = TRUE_DAG.replace("promo -> margin;", "promo -> sales;")


def _shops(seed=0, n_outlets=150, n_weeks=6, n_towns=30, promo_effect=0.6):
    rng = np.random.default_rng(seed)
    outlet = np.repeat(np.arange(n_outlets), n_weeks)
    week = np.tile(np.arange(n_weeks), n_outlets)
    town = outlet % n_towns
    n = outlet.size
    quality = 1.5 * rng.normal(size=n_outlets)[outlet]
    # town-week weather: the same for every outlet of a town in a week
    rainfall = rng.normal(size=(n_towns, n_weeks))[town, week]
    price = rng.normal(size=n) + 0.3 * week
    promo = rng.normal(size=n) + 0.5 * rng.normal(size=n_outlets)[outlet]
    footfall = -0.5 * rainfall + quality + rng.normal(size=n)
    margin = 0.5 * price + quality + promo_effect * promo + rng.normal(size=n)
    sales = 0.6 * footfall - 0.4 * price + 0.5 * margin + rng.normal(size=n)
    return pd.DataFrame({"outlet": outlet, "week": week, "town": town, "rainfall": rainfall,
                         "price": price, "promo": promo, "footfall": footfall,
                         "margin": margin, "sales": sales})


PANEL = {"unit": "outlet", "time": "week", "cluster": "town", "within_units": True}


def test_implied_independences_follow_d_separation():
    graph = parse_dot(TRUE_DAG)
    found = {(s.a, s.b): s.given for s in implied_independences(graph, graph.observed)}
    assert found[("price", "promo")] == ()
    assert found[("margin", "rainfall")] == ()  # footfall, a collider, blocks the path
    # conditioning on margin (a collider of promo and the latent quality) opens
    # promo -> margin <- quality -> footfall -> sales: footfall must join
    assert found[("promo", "sales")] == ("footfall", "margin", "price")
    assert ("footfall", "margin") not in found  # footfall <- quality -> margin: latent
    assert ("margin", "sales") not in found  # adjacent


def test_the_true_dag_passes_within_outlets():
    table = check_independences(parse_dot(TRUE_DAG), _shops(), **PANEL)
    tested = table[table["p_value"].notna()]
    assert len(tested) >= 5
    assert not tested["rejected"].any(), tested


def test_a_dag_missing_an_arrow_fails_and_names_the_independence():
    table = check_independences(parse_dot(MISSING_ARROW), _shops(), **PANEL)
    rejected = table[table["rejected"]]
    assert set(rejected["independence"]) == {"margin _||_ promo"}
    # with no promo effect in the data, the same DAG is not rejected
    table = check_independences(parse_dot(MISSING_ARROW), _shops(promo_effect=0.0), **PANEL)
    assert not table["rejected"].any()


def test_demeaning_within_units_removes_the_unit_level_latent():
    graph = parse_dot(TRUE_DAG)
    data = _shops()
    within = check_independences(graph, data, **PANEL).set_index("independence")
    # the unit effects adjust for quality: footfall and margin become separable, and
    # promo and sales need no footfall in the conditioning set
    assert not within.loc["footfall _||_ margin", "rejected"]
    assert not within.loc["promo _||_ sales | margin, price", "rejected"]
    # pooled over units, quality is latent: no such statement is implied
    pooled = check_independences(graph, data, time="week", cluster="town")
    assert "footfall _||_ margin" not in set(pooled["independence"])
    # and that pair is indeed dependent across outlets (so demeaning is what saves it)
    assert np.corrcoef(data["footfall"], data["margin"])[0, 1] > 0.3


def test_cluster_robust_test_does_not_mistake_shared_town_weeks_for_dependence():
    # two town-week series with their own shocks, independent: row-level Fisher z
    # treats 900 rows as independent; the town clusters do not
    rng = np.random.default_rng(5)
    n_towns, n_weeks, per = 30, 6, 5
    town = np.repeat(np.arange(n_towns), n_weeks * per)
    week = np.tile(np.repeat(np.arange(n_weeks), per), n_towns)
    a = rng.normal(size=(n_towns, n_weeks))[town, week] + 0.2 * rng.normal(size=town.size)
    b = rng.normal(size=(n_towns, n_weeks))[town, week] + 0.2 * rng.normal(size=town.size)
    data = pd.DataFrame({"town": town, "week": week, "a": a, "b": b})
    graph = parse_dot("digraph { a; b; }")
    naive = check_independences(graph, data)
    clustered = check_independences(graph, data, cluster="town")
    assert naive.loc[0, "method"] == "Fisher z"
    assert clustered.loc[0, "method"].startswith("cluster-robust")
    assert clustered.loc[0, "p_value"] > naive.loc[0, "p_value"]
    assert clustered.loc[0, "r"] == pytest.approx(naive.loc[0, "r"])


def test_fisher_z_of_a_partial_correlation_matches_the_textbook():
    rng = np.random.default_rng(3)
    n = 400
    z = rng.normal(size=n)
    x = z + rng.normal(size=n)
    y = z + 0.2 * x + rng.normal(size=n)
    data = pd.DataFrame({"x": x, "y": y, "z": z})
    table = check_independences(parse_dot("digraph { z -> x; z -> y; }"), data)
    row = table.set_index("independence").loc["x _||_ y | z"]
    rx = x - np.polyval(np.polyfit(z, x, 1), z)
    ry = y - np.polyval(np.polyfit(z, y, 1), z)
    r = np.corrcoef(rx, ry)[0, 1]
    zstat = np.arctanh(r) * np.sqrt(n - 1 - 3)
    assert row["r"] == pytest.approx(r, rel=1e-9)
    assert row["statistic"] == pytest.approx(zstat, rel=1e-9)
    assert row["rejected"]


def test_a_categorical_variable_is_tested_as_a_block():
    rng = np.random.default_rng(4)
    n = 600
    kind = rng.choice(["a", "b", "c"], n)
    x = rng.normal(size=n) + np.where(kind == "c", 1.0, 0.0)
    data = pd.DataFrame({"kind": kind, "x": x})
    table = check_independences(parse_dot("digraph { kind; x; }"), data)
    assert table.loc[0, "method"] == "F test" and table.loc[0, "rejected"]


def _context(tmp_path, dot, data, spec_kwargs):
    path = tmp_path / "dag.dot"
    path.write_text(dot)
    spec = Spec(graph=path, **spec_kwargs)
    design = SimpleNamespace(unit_effects="within")
    result = SimpleNamespace(effect_draws={"total": np.full((2, 50), 0.3)},
                             fits={"outcome": SimpleNamespace(design=design)})
    return Context(SimpleNamespace(spec=spec), result, data, Options())


SHOP_SPEC = dict(outcome="sales", treatment="promo", controls=("price",), unit="outlet",
                 group="town", time="week")


def test_registered_test_fails_naming_the_independence(tmp_path):
    ctx = _context(tmp_path, MISSING_ARROW, _shops(), SHOP_SPEC)
    (row,) = graph_independence(ctx).rows
    assert row.refuter == "graph_independence" and row.verdict == "fail"
    assert "margin _||_ promo (r = " in row.detail
    assert "demeaned within outlet" in row.detail and "clustered by town" in row.detail
    ctx = _context(tmp_path, TRUE_DAG, _shops(), SHOP_SPEC)
    outcome = graph_independence(ctx)
    assert outcome.rows[0].verdict == "pass"
    assert "9 tested, none rejected" in outcome.rows[0].detail
    assert len(outcome.notes["table"]) == 9


def test_registered_test_without_a_dag_is_inconclusive():
    spec = Spec(**SHOP_SPEC)
    result = SimpleNamespace(effect_draws={"total": np.zeros((2, 5))})
    ctx = Context(SimpleNamespace(spec=spec), result, _shops(), Options())
    (row,) = graph_independence(ctx).rows
    assert row.verdict == "inconclusive" and "names no DAG" in row.detail

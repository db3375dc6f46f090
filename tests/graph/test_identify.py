"""Tests of identification (vagg_bayes.graph.identify): spec checks, sets, estimands."""

from __future__ import annotations

import copy
import json
import logging
import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from vagg_bayes.errors import DataError, GraphError
from vagg_bayes.graph import (
    CausalGraph,
    Identification,
    check_spec,
    identify,
    load_graph,
    parse_dot,
)
from vagg_bayes.spec import Spec, load_spec

ROOT = Path(__file__).resolve().parents[2]
MECHANISMS = ROOT / "models" / "mechanisms.dot"

# neutral names: pupils in schools; x treatment, y outcome, m1/m2 parallel mediators,
# z an instrument, pupil a mediator-outcome confounder
SCHOOL = """digraph school {
    z -> x;
    school -> x; school -> y; school -> m1; school -> m2;
    pupil -> m1; pupil -> y;
    x -> m1 -> y;  x -> m2 -> y;  x -> y;
}"""

# several minimum adjustment sets of size 3: {a|b, c|d, e}; DoWhy's default choice among
# them depends on Python's string hashing, ours must not
AMBIGUOUS = """digraph {
    a -> b -> y;  a -> x;  c -> x;  c -> d -> y;  e -> x;  e -> y;  x -> y;
}"""


@pytest.fixture(scope="module")
def mech() -> CausalGraph:
    return load_graph(MECHANISMS)


@pytest.fixture(scope="module")
def school() -> CausalGraph:
    return parse_dot(SCHOOL, source=Path("school.dot"))


def spec(**kw) -> Spec:
    return Spec(**{"treatment": "x", "outcome": "y", **kw})


def mspec(**kw) -> Spec:
    """A spec for the shipped graph; firm-year panel as in models/*.toml (unit effects on)."""
    return Spec(**{"treatment": "va", "outcome": "resilience", "unit": "firm_id",
                   "time": "year", **kw})  # fmt: skip


# -- check_spec: errors -----------------------------------------------------------------------
def test_bad_control_mediator_names_control_and_path(mech):
    with pytest.raises(GraphError) as info:
        check_spec(mech, mspec(controls=("size_ln", "m_cost")))
    msg = str(info.value)
    assert "'m_cost'" in msg
    assert "va -> m_cost -> resilience" in msg
    assert "blocks part of the effect or opens collider bias" in msg
    assert "Remove it from controls, or list it under mediators" in msg
    assert "mechanisms.dot" in msg


def test_bad_control_neutral_names(school):
    with pytest.raises(GraphError, match=r"Control 'm2'.*x -> m2 -> y.*Remove it from controls"):
        check_spec(school, spec(controls=("school", "m2")))


def test_bad_control_descendant_off_the_outcome_path():
    g = parse_dot("digraph { x -> y; x -> after; school -> x; school -> y; }")
    expected = r"Control 'after'.*lies on or after.*: x -> after\..*no directed path to y"
    with pytest.raises(GraphError, match=expected):
        check_spec(g, spec(controls=("school", "after")))


def test_treatment_not_a_node(school):
    with pytest.raises(GraphError, match=r"treatment 'xx'.*not a node of school\.dot.*Nodes are"):
        check_spec(school, spec(treatment="xx"))


def test_outcome_not_a_node(school):
    with pytest.raises(GraphError, match=r"outcome 'score'.*not a node"):
        check_spec(school, spec(outcome="score"))


def test_mediator_not_reached_by_treatment(school):
    with pytest.raises(GraphError, match=r"Mediator 'pupil' is not on a directed path x -> pupil"):
        check_spec(school, spec(mediators=("pupil",)))


def test_mediator_not_reaching_outcome():
    g = parse_dot("digraph { x -> y; x -> w; }")
    with pytest.raises(GraphError, match=r"'w' is not on a directed path.*from w to y"):
        check_spec(g, spec(mediators=("w",)))


def test_mediator_not_a_node(school):
    with pytest.raises(GraphError, match=r"Mediator 'm9'.*not a node"):
        check_spec(school, spec(mediators=("m9",)))


def test_mediators_must_be_parallel():
    g = parse_dot("digraph { x -> m1 -> m2 -> y; x -> y; }")
    with pytest.raises(GraphError, match=r"'m2' is a descendant of mediator 'm1'.*m1 -> m2"):
        check_spec(g, spec(mediators=("m1", "m2")))


def test_spec_column_marked_latent():
    g = parse_dot('digraph { u [observed="no"]; u -> x -> y; u -> y; }')
    with pytest.raises(GraphError, match=r"'u' is named in the spec.*observed=\"no\""):
        check_spec(g, spec(controls=("u",)))


# -- check_spec: warnings ---------------------------------------------------------------------
def test_missing_confounder_is_named_with_its_path(school):
    warns = check_spec(school, spec())
    (total,) = [w for w in warns if "the effect of x on y" in w]
    assert "'school' (x <- school -> y)" in total
    assert "Add it to controls" in total


def test_missing_confounders_of_mechanisms(mech):
    warns = check_spec(mech, mspec(controls=("size_ln", "ownership")))
    (total,) = [w for w in warns if "the effect of va on resilience" in w]
    assert "'gdp_pc_ln' (va <- city_dev -> gdp_pc_ln -> resilience)" in total
    assert "'region' (va <- region -> resilience)" in total


def test_complete_controls_give_no_warning(school):
    assert check_spec(school, spec(controls=("school", "pupil"), mediators=("m1", "m2"))) == []


def test_mediator_outcome_confounder_warns(school):
    warns = check_spec(school, spec(controls=("school",), mediators=("m1", "m2")))
    assert len(warns) == 1
    assert "m1 -> y given x (sequential ignorability)" in warns[0]
    assert "'pupil' (m1 <- pupil -> y)" in warns[0]


def test_control_not_in_graph_warns(school):
    warns = check_spec(school, spec(controls=("school", "pupil", "class_size")))
    assert len(warns) == 1
    assert "'class_size' are not nodes of school.dot" in warns[0]
    assert "exogenous" in warns[0]


def test_uncovered_indirect_path_warns(mech):
    controls = ("region", "gdp_pc_ln", "size_ln", "age_ln", "leverage", "ownership")
    warns = check_spec(mech, mspec(controls=controls, mediators=("m_cost",)))
    assert len(warns) == 1
    assert "do not intercept every indirect path" in warns[0]


def test_no_warning_for_all_six_mechanisms(mech):
    controls = ("region", "gdp_pc_ln", "size_ln", "age_ln", "leverage", "ownership")
    mediators = ("m_cost", "m_speed", "m_supply", "m_transform", "m_spillover", "m_congestion")
    assert check_spec(mech, mspec(controls=controls, mediators=mediators)) == []


def test_collider_control_warns():
    # m-bias: conditioning on the pre-treatment collider c opens x <- a -> c <- b -> y
    g = parse_dot(
        'digraph { a [observed="no"]; b [observed="no"]; a -> x; a -> c; b -> c; b -> y; x -> y; }'
    )
    warns = check_spec(g, spec(controls=("c",)))
    assert any("Control(s) 'c' open a non-causal path" in w for w in warns)
    assert identify(g, spec(controls=("c",))).backdoor == ()


def test_unidentified_total_effect_warns():
    g = parse_dot('digraph { u [observed="no"]; u -> x; u -> y; x -> y; }')
    warns = check_spec(g, spec())
    assert any("not identified by adjustment" in w for w in warns)


# -- identify ---------------------------------------------------------------------------------
def test_backdoor_of_mechanisms(mech):
    ident = identify(mech, mspec())
    assert ident.backdoor == ("gdp_pc_ln", "region")
    assert ident.total_identified
    assert ident.latent == ("city_dev", "firm_quality")
    assert ident.instruments == ("tel1984",)
    assert ident.unit_adjusted == ("firm_quality",)
    assert ident.notes == (
        "firm_quality: unit-level, unobserved; adjusted for by unit effects "
        "(unit_effects = within)",
    )


def test_backdoor_prefers_spec_controls(mech):
    ident = identify(mech, mspec(controls=("size_ln", "ownership")))
    assert ident.backdoor == ("gdp_pc_ln", "ownership", "region", "size_ln")
    full = ("age_ln", "gdp_pc_ln", "leverage", "ownership", "region", "size_ln")
    assert identify(mech, mspec(controls=full)).backdoor == full


def test_instrument_found_and_rejected():
    ident = identify(parse_dot(SCHOOL), spec(controls=("school",)))
    assert ident.instruments == ("z",)
    assert ident.identified["total:iv"]
    leaky = parse_dot(SCHOOL.replace("z -> x;", "z -> x; z -> y;"))
    assert identify(leaky, spec(controls=("school", "z"))).instruments == ()
    confounded = parse_dot(SCHOOL.replace("z -> x;", "z -> x; school -> z;"))
    assert identify(confounded, spec(controls=("school",))).instruments == ()


def test_mediator_sets(school):
    ident = identify(school, spec(controls=("school",), mediators=("m1", "m2")))
    assert ident.mediator_sets == {"m1": ("pupil", "school"), "m2": ("school",)}
    assert ident.first_stage_sets == {"m1": ("school",), "m2": ("school",)}
    assert ident.identified["indirect:m1"] and ident.identified["indirect:m2"]
    assert ident.identified["direct"] and ident.identified["indirect"]
    assert any("pupil" in w for w in ident.warnings)


def test_unidentified_mediator():
    g = parse_dot('digraph { u [observed="no"]; x -> m -> y; x -> y; u -> m; u -> y; }')
    ident = identify(g, spec(mediators=("m",)))
    assert ident.total_identified
    assert not ident.identified["indirect:m"]
    assert not ident.identified["direct"]
    assert ident.estimands["indirect:m"].endswith("No such variable(s) found!\n")
    assert any("through 'm' is not identified" in w for w in ident.warnings)


def test_latent_confounding_and_frontdoor():
    g = parse_dot('digraph { u [observed="no"]; u -> x; u -> y; x -> y; }')
    ident = identify(g, spec())
    assert not ident.total_identified
    assert ident.backdoor == ()
    assert not ident.identified["total"]
    fd = parse_dot('digraph { u [observed="no"]; u -> x; u -> y; x -> m -> y; }')
    ident = identify(fd, spec())
    assert ident.frontdoor == ("m",)
    assert ident.total_identified and not ident.identified["total"]


def test_estimand_texts(mech):
    ident = identify(mech, mspec(mediators=("m_cost", "m_spillover")))
    assert set(ident.estimands) == {
        "total", "total:iv", "total:frontdoor", "direct", "indirect",
        "indirect:m_cost", "indirect:m_spillover",
    }  # fmt: skip
    assert ident.estimands["total"].startswith("Estimand name: total\n")
    assert "E[resilience|gdp_pc_ln,region]" in ident.estimands["total"]
    assert "tel1984" in ident.estimands["total:iv"]
    assert "No such variable(s) found!" in ident.estimands["total:frontdoor"]
    assert "va→m_cost→resilience" in ident.estimands["indirect:m_cost"]
    assert "Second-stage-unconfoundedness" in ident.estimands["indirect:m_cost"]


def test_summary_and_str(mech):
    ident = identify(mech, mspec(mediators=("m_cost",)))
    table = ident.summary()
    assert list(table.columns) == [
        "estimand", "method", "identified", "adjustment_set", "first_stage_set", "instruments",
    ]  # fmt: skip
    assert list(table["estimand"]) == [
        "total", "total:iv", "total:frontdoor", "direct", "indirect", "indirect:m_cost",
    ]  # fmt: skip
    row = table.set_index("estimand").loc["total"]
    assert row["adjustment_set"] == "gdp_pc_ln, region"
    assert bool(row["identified"])
    assert table.set_index("estimand").loc["total:iv", "instruments"] == "tel1984"
    text = str(ident)
    assert "effect of va on resilience" in text
    assert "latent nodes: city_dev, firm_quality" in text
    assert "notes:\n  - firm_quality: unit-level, unobserved; adjusted for by unit effects" in text
    assert "indirect:m_cost" in text
    assert "<table" in ident._repr_html_()


def test_data_columns_decide_what_is_observed(mech):
    cols = ["va", "resilience", "tel1984", "region", "size_ln"]  # no gdp_pc_ln
    data = pd.DataFrame({c: [0.0, 1.0] for c in cols})
    before = data.copy()
    ident = identify(mech, mspec(), data)
    pd.testing.assert_frame_equal(data, before)
    assert "gdp_pc_ln" in ident.latent
    assert not ident.total_identified  # va <- city_dev -> gdp_pc_ln -> resilience is open
    assert ident.instruments == ("tel1984",)
    assert any("'gdp_pc_ln'" in w and "treated as latent" in w for w in ident.warnings)


def test_data_without_treatment(mech):
    data = pd.DataFrame({"resilience": [0.0]})
    with pytest.raises(DataError, match=r"treatment column 'va'.*not in the data"):
        identify(mech, mspec(), data)


def test_accepts_a_path():
    assert identify(MECHANISMS, mspec()).backdoor == ("gdp_pc_ln", "region")


def test_errors_raised_before_dowhy(mech):
    with pytest.raises(GraphError, match="'m_cost'"):
        identify(mech, mspec(controls=("m_cost",)))


def test_dowhy_is_silent(mech):
    logger = logging.getLogger("dowhy")
    level = logger.level
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        identify(mech, mspec(mediators=("m_cost",)))
    assert logger.level == level


def test_identification_is_immutable_and_copyable(school):
    ident = identify(school, spec(controls=("school",), mediators=("m1",)))
    with pytest.raises(AttributeError):
        ident.backdoor = ()
    assert copy.deepcopy(ident) == ident
    assert pickle.loads(pickle.dumps(ident)) == ident
    assert isinstance(ident, Identification)


# -- unit-level latent nodes -----------------------------------------------------------------
# shops observed over quarters: ad spend (x) raises footfall (m) and revenue (y); a shop's
# unobserved, time-invariant location quality confounds footfall and revenue
SHOPS = """digraph shops {
    location [observed="no", level="unit"];
    region_code -> ad_spend;  region_code -> revenue;
    ad_spend -> footfall -> revenue;  ad_spend -> revenue;
    location -> footfall;  location -> revenue;
}"""


def shop_spec(**kw) -> Spec:
    base = {"treatment": "ad_spend", "outcome": "revenue", "mediators": ("footfall",),
            "controls": ("region_code",), "unit": "shop", "time": "quarter"}  # fmt: skip
    return Spec(**{**base, **kw})


@pytest.fixture(scope="module")
def shops() -> CausalGraph:
    return parse_dot(SHOPS, source=Path("shops.dot"))


@pytest.mark.parametrize("effects", ["within", "fixed"])
def test_unit_level_confounder_of_mediator_adjusted_by_unit_effects(shops, effects):
    s = shop_spec(unit_effects=effects)
    assert check_spec(shops, s) == []
    ident = identify(shops, s)
    assert ident.identified["indirect:footfall"]
    assert ident.identified["direct"] and ident.identified["indirect"]
    assert ident.mediator_sets == {"footfall": ("region_code",)}  # data columns only
    assert ident.unit_adjusted == ("location",)
    assert ident.notes == (
        f"location: unit-level, unobserved; adjusted for by unit effects "
        f"(unit_effects = {effects})",
    )
    assert ident.warnings == ()
    assert "location: unit-level, unobserved" in str(ident)
    assert pickle.loads(pickle.dumps(ident)) == ident


def test_unit_level_confounder_warns_without_unit_effects(shops):
    warns = check_spec(shops, shop_spec(unit_effects="none"))
    (unit,) = [w for w in warns if "unit-level latent node" in w]
    assert unit == (
        "In shops.dot, the outcome equation footfall -> revenue given ad_spend (sequential "
        "ignorability) has an open back-door path through the unit-level latent node "
        "'location' (footfall <- location -> revenue), and [model].unit_effects = \"none\" "
        "has no unit effects to adjust for it. Set [model].unit_effects = \"within\" (or "
        "\"fixed\") so that unit effects adjust for it."
    )
    assert any("through 'footfall' is not identified" in w for w in warns)
    ident = identify(shops, shop_spec(unit_effects="none"))
    assert not ident.identified["indirect:footfall"]
    assert ident.unit_adjusted == () and ident.notes == ()
    assert ident.total_identified  # location does not confound ad_spend -> revenue


def test_unit_level_confounder_warns_with_random_effects(shops):
    warns = check_spec(shops, shop_spec(unit_effects="random"))
    assert any(
        re.search(
            r"'location' \(footfall <- location -> revenue\), and \[model\]\.unit_effects = "
            r"\"random\" does not adjust for it \(random unit effects assume the unit effects "
            r"are independent of the regressors.*Set \[model\]\.unit_effects = \"within\"",
            w,
        )
        for w in warns
    )


def test_unit_level_confounder_warns_without_unit_and_time(shops):
    for s in (shop_spec(time=None), shop_spec(unit=None, time=None)):
        warns = check_spec(shops, s)
        (unit,) = [w for w in warns if "unit-level latent node 'location'" in w]
        assert "only when [data].unit and [data].time are set" in unit
        assert 'Set [data].unit and [data].time, and [model].unit_effects = "within"' in unit


def test_unit_level_confounder_of_treatment_and_outcome():
    g = parse_dot(
        'digraph { talent [observed="no", level="unit"]; talent -> hours; talent -> wage; '
        "hours -> wage; }"
    )
    s = Spec(treatment="hours", outcome="wage", unit="worker", time="month")
    assert check_spec(g, s) == []
    ident = identify(g, s)
    assert ident.total_identified and ident.identified["total"]
    assert ident.backdoor == ()
    warns = check_spec(g, s.with_(unit_effects="none"))
    assert any("effect of hours on wage has an open back-door path" in w and "'talent'" in w
               for w in warns)  # fmt: skip
    assert any("not identified by adjustment" in w for w in warns)
    assert not identify(g, s.with_(unit_effects="none")).total_identified


def test_unit_level_node_blocked_by_controls_needs_no_unit_effects():
    # the unit-level node reaches the outcome only through an observed control
    g = parse_dot(
        'digraph { q [observed="no", level="unit"]; q -> skill; skill -> x; skill -> y; '
        "q -> x; x -> y; }"
    )
    s = spec(controls=("skill",), unit="person", time="week", unit_effects="none")
    assert check_spec(g, s) == []


def test_other_latent_confounding_is_named_too():
    g = parse_dot(
        'digraph { q [observed="no", level="unit"]; u [observed="no"]; '
        "q -> m; q -> y; u -> m; u -> y; x -> m -> y; x -> y; }"
    )
    warns = check_spec(g, spec(mediators=("m",), unit="person", time="week",
                               unit_effects="none"))  # fmt: skip
    (unit,) = [w for w in warns if "unit-level latent node" in w]
    assert "'q' (m <- q -> y)" in unit
    assert unit.endswith("(other latent confounding remains even then).")
    # with unit effects q is adjusted for, u is not
    warns = check_spec(g, spec(mediators=("m",), unit="person", time="week"))
    assert not any("unit-level" in w for w in warns)
    assert any("through 'm' is not identified" in w for w in warns)


def test_unit_level_node_caused_by_treatment_is_an_error():
    g = parse_dot('digraph { q [observed="no", level="unit"]; x -> q -> y; x -> y; }')
    s = spec(unit="person", time="week")
    with pytest.raises(
        GraphError,
        match=r"Unit-level node 'q' \(level=\"unit\"\) is a descendant of the treatment 'x' "
        r"in the causal graph: x -> q\..*time-invariant.*unit_effects = \"within\".*Remove "
        r"the arrow into 'q', or drop level=\"unit\" from 'q'",
    ):
        check_spec(g, s)
    check_spec(g, s.with_(unit_effects="none"))  # not adjusted for: no contradiction


def test_shipped_specs_pass_with_unit_effects():
    for name in ("baseline.toml", "mediation.toml"):
        s = load_spec(ROOT / "models" / name)
        assert s.unit and s.time and s.unit_effects == "within"
        assert check_spec(s.graph, s) == []
        ident = identify(s.graph, s)
        assert ident.unit_adjusted == ("firm_quality",)
        assert all(ident.identified[k] for k in ident.identified if k.startswith("indirect"))
    mediation = load_spec(ROOT / "models" / "mediation.toml")
    warns = check_spec(mediation.graph, mediation.with_(unit_effects="none"))
    named = [w for w in warns if "unit-level latent node 'firm_quality'" in w]
    assert [w.split(" has ")[0] for w in named] == [
        f"In {mediation.graph}, the outcome equation {m} -> resilience given va "
        "(sequential ignorability)"
        for m in ("m_cost", "m_speed", "m_supply", "m_transform")
    ]


# -- determinism ------------------------------------------------------------------------------
def test_same_output_every_run(mech):
    s = mspec(controls=("size_ln",), mediators=("m_cost", "m_speed", "m_congestion"))
    a, b = identify(mech, s), identify(load_graph(MECHANISMS), s)
    assert a == b
    assert a.estimands == b.estimands
    assert a.warnings == b.warnings
    pd.testing.assert_frame_equal(a.summary(), b.summary())


def test_tie_break_is_alphabetical():
    ident = identify(parse_dot(AMBIGUOUS), spec())
    assert ident.backdoor == ("a", "c", "e")


_CHILD = """
import json, sys
from vagg_bayes.graph import check_spec, parse_dot
from vagg_bayes.spec import Spec, load_spec
g = parse_dot(sys.stdin.read())
print(json.dumps(check_spec(g, Spec(treatment="x", outcome="y"))))
"""


def test_choice_does_not_depend_on_string_hashing():
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=AMBIGUOUS,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=True,
        ).stdout
        outputs.add(out)
    assert len(outputs) == 1
    (warns,) = [json.loads(o) for o in outputs]
    assert "'a' (x <- a -> b -> y), 'c' (x <- c -> d -> y), 'e' (x <- e -> y)" in warns[0]

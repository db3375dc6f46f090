"""Spec files: parsed and validated before any sampling; every mistake named."""

from pathlib import Path

import pytest

from vagg_bayes.errors import SpecError
from vagg_bayes.spec import Spec, load_spec, parse_spec

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_shipped_specs_parse():
    spec = load_spec(MODELS / "baseline.toml")
    assert spec.outcome == "resilience" and spec.group == "city_id"
    assert spec.graph == MODELS / "mechanisms.dot" and spec.graph.is_file()
    assert "va" not in spec.controls


def test_unknown_key_lists_valid_ones():
    with pytest.raises(SpecError, match=r"Unknown key 'treatement' in \[variables\].*outcome, "
                                        r"treatment, controls, mediators"):
        parse_spec({"variables": {"outcome": "y", "treatement": "x"}})


def test_unknown_section():
    with pytest.raises(SpecError, match=r"Unknown section \[priors\].*\[data\]"):
        parse_spec({"variables": {"outcome": "y", "treatment": "x"}, "priors": {}})


def test_required_key():
    with pytest.raises(SpecError, match=r"\[variables\].treatment is missing"):
        parse_spec({"variables": {"outcome": "y"}})


def test_wrong_types():
    with pytest.raises(SpecError, match=r"\[model\].varying_slope.*must be a bool"):
        parse_spec({"variables": {"outcome": "y", "treatment": "x"},
                    "model": {"varying_slope": "yes"}})
    with pytest.raises(SpecError, match=r"\[variables\].controls.*list of column names"):
        parse_spec({"variables": {"outcome": "y", "treatment": "x", "controls": [1, 2]}})


def test_family_and_slope_rules():
    with pytest.raises(SpecError, match="family.*poisson"):
        Spec(outcome="y", treatment="x", family="poisson")
    with pytest.raises(SpecError, match=r"varying_slope = true.*\[data\].group"):
        Spec(outcome="y", treatment="x", varying_slope=True)


def test_column_in_two_roles():
    with pytest.raises(SpecError, match="'x' .* more than one role"):
        Spec(outcome="y", treatment="x", controls=("x",))


def test_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[variables\noutcome = 1")
    with pytest.raises(SpecError, match="bad.toml.*not valid TOML"):
        load_spec(path)


def test_graph_resolved_relative_to_spec(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[variables]\noutcome="y"\ntreatment="x"\n[model]\ngraph="g.dot"\n')
    assert load_spec(path).graph == tmp_path / "g.dot"


def test_string_control_becomes_tuple():
    spec = parse_spec({"variables": {"outcome": "y", "treatment": "x", "controls": "z"}})
    assert spec.controls == ("z",) and spec.columns == ["y", "x", "z"]


def test_varying_mediator_must_be_a_mediator_and_needs_a_group():
    with pytest.raises(SpecError, match=r"varying_mediator = \"m9\".*not one of.*m1"):
        Spec(outcome="y", treatment="t", mediators=("m1",), group="g", varying_mediator="m9")
    with pytest.raises(SpecError, match="varying_mediator.*needs a grouping column"):
        Spec(outcome="y", treatment="t", mediators=("m1",), varying_mediator="m1")
    spec = parse_spec({"data": {"group": "g"},
                       "variables": {"outcome": "y", "treatment": "t", "mediators": ["m1"]},
                       "model": {"varying_mediator": "m1"}})
    assert spec.varying_mediator == "m1"


def test_group_means_key():
    base = {"data": {"group": "town"}, "variables": {"outcome": "y", "treatment": "x"}}
    assert parse_spec(base).group_means is False
    assert parse_spec({**base, "model": {"group_means": True}}).group_means is True
    with pytest.raises(SpecError, match=r"\[model\].group_means.*must be a bool"):
        parse_spec({**base, "model": {"group_means": "yes"}})
    with pytest.raises(SpecError, match=r"group_means = true.*needs \[data\].group"):
        parse_spec({"variables": {"outcome": "y", "treatment": "x"},
                    "model": {"group_means": True}})
    with pytest.raises(SpecError, match=r"group_means = true.*instrument"):
        parse_spec({**base, "variables": {"outcome": "y", "treatment": "x",
                                          "instrument": "z"},
                    "model": {"group_means": True}})
    with pytest.raises(SpecError, match=r"Unknown key 'city_means'.*group_means"):
        parse_spec({**base, "model": {"city_means": True}})

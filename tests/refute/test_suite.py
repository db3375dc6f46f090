"""The suite: test selection, checks before sampling, the table, the files, the spec key."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.errors import DataError, SpecError
from vagg_bayes.refute import (
    REGISTRY,
    Options,
    RefutationError,
    RefutationResult,
    Row,
    available_tests,
    check_request,
    parse_tests,
)
from vagg_bayes.refute.base import CONTRACT_COLUMNS
from vagg_bayes.spec import Spec, parse_spec

MINE = ("placebo_permute_groups", "placebo_time", "placebo_mediator", "dummy_outcome",
        "negative_control_outcome", "random_common_cause", "data_subset",
        "leave_one_group_out", "group_bootstrap")


def test_every_refit_based_test_is_registered_under_its_name():
    names = available_tests()
    assert set(MINE) <= set(names) and set(names) == set(REGISTRY)
    assert names.index("placebo_permute_groups") < names.index("group_bootstrap")


def test_test_names_are_checked_with_a_suggestion():
    assert parse_tests("data_subset, placebo_time") == ["data_subset", "placebo_time"]
    assert parse_tests(None) == available_tests()
    with pytest.raises(RefutationError, match="Unknown refutation test 'placebo_tme'.*"
                                              "Did you mean 'placebo_time'"):
        parse_tests("placebo_tme")
    with pytest.raises(RefutationError, match="--tests is empty"):
        parse_tests(" , ")


def _panel():
    return pd.DataFrame({"city": [1, 1, 2, 2, 3, 3], "prov": ["a", "a", "a", "a", "b", "b"],
                         "mixed": ["a", "b", "a", "a", "b", "b"], "y": np.arange(6.0),
                         "x": [0.0, 1, 0, 1, 0, 1]})


SPEC = Spec(outcome="y", treatment="x", group="city")


def test_request_checks_name_the_column_or_group_and_the_fix():
    check_request(SPEC, _panel(), ["placebo_permute_groups"], Options(strata="prov"))
    with pytest.raises(DataError, match="Column 'province' named in --strata is not in "
                                        "panel.csv.*Columns are: city, prov"):
        check_request(SPEC, _panel(), [], Options(strata="province"), source="panel.csv")
    with pytest.raises(DataError, match="'mixed'.*several values within city 1"):
        check_request(SPEC, _panel(), [], Options(strata="mixed"))
    with pytest.raises(DataError, match="Group '9' named in --drop-groups is not a value "
                                        "of 'city'.*1, 2, 3"):
        check_request(SPEC, _panel(), [], Options(drop_groups=("1", "9")))
    with pytest.raises(DataError, match="'nc' named in \\[variables\\].negative_control"):
        check_request(SPEC.with_(negative_control="nc"), _panel(),
                      ["negative_control_outcome"], Options())
    with pytest.raises(RefutationError, match="--strata needs \\[data\\].group"):
        check_request(Spec(outcome="y", treatment="x"), _panel(), [], Options(strata="prov"))


def test_options_are_validated():
    with pytest.raises(ValueError, match="placebos must be a positive integer"):
        Options(placebos=0)
    with pytest.raises(ValueError, match="subset_fraction"):
        Options(subset_fraction=1.0)
    assert Options(drop_groups=(1, 2)).drop_groups == ("1", "2")


def test_spec_names_a_negative_control_outcome():
    doc = {"variables": {"outcome": "y", "treatment": "x", "negative_control": "nc"}}
    assert parse_spec(doc).negative_control == "nc"
    assert parse_spec(doc).to_dict()["negative_control"] == "nc"
    with pytest.raises(SpecError, match="negative_control must be a str"):
        parse_spec({"variables": {"outcome": "y", "treatment": "x", "negative_control": 3}})
    with pytest.raises(SpecError, match="Column 'y'.*more than one role"):
        parse_spec({"variables": {"outcome": "y", "treatment": "x", "negative_control": "y"}})
    assert "nc" not in parse_spec(doc).columns  # the estimate does not need it


def _rows():
    return [Row("placebo_time", "total", 0.5, 0.01, -0.1, 0.12, "pass", "Rule: covers 0."),
            Row("data_subset", "total", 0.5, math.nan, math.nan, math.nan, "inconclusive",
                "Skipped: no groups.", n_refits=3, n_failed=2)]


def test_the_table_has_the_contract_columns_first_and_passed_empty_when_inconclusive():
    frame = RefutationResult(tuple(_rows())).summary()
    assert tuple(frame.columns[:7]) == CONTRACT_COLUMNS
    assert frame["passed"].tolist() == [True, None]
    assert frame["verdict"].tolist() == ["pass", "inconclusive"]


def test_write_lays_out_the_table_the_figures_and_the_manifest(tmp_path):
    def figure(path):
        path.write_bytes(b"\x89PNG fake")

    result = RefutationResult(tuple(_rows()), {"refute_data_subset.png": figure},
                              {"seed": 3, "options": Options(seed=3).to_dict()})
    result.write(tmp_path, manifest={"command_line": ["vagg-bayes", "refute"]})
    table = pd.read_csv(tmp_path / "refutations.csv")
    assert tuple(table.columns[:7]) == CONTRACT_COLUMNS
    assert table["passed"].iloc[0] is True or table["passed"].iloc[0] == "True"
    assert pd.isna(table["passed"].iloc[1])
    assert (tmp_path / "refute_data_subset.png").read_bytes().startswith(b"\x89PNG")
    manifest = json.loads((tmp_path / "refute_manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["command_line"] == ["vagg-bayes", "refute"]
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind
    assert "1 pass, 0 fail, 1 inconclusive" in str(result)


@pytest.mark.slow
def test_refute_an_estimate_result_records_the_run_and_survives_a_broken_test(
        firm_panel_factory, tmp_path):
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.pipeline import estimate
    from vagg_bayes.refute import refute, register

    data, _ = firm_panel_factory(n_towns=6, n_plants=6, n_periods=4, seed=41)
    spec = Spec(outcome="exp_res", treatment="dig", controls=("scale_ln",), group="town",
                time="period", group_time_effects=False)
    settings = SamplerSettings(draws=150, tune=200, chains=2, random_seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = estimate(data, spec, settings=settings)

    @register("always_breaks")
    def always_breaks(context):
        raise RuntimeError("a broken test")

    try:
        out = refute(result, data, tests="always_breaks,random_common_cause",
                     options=Options(replicates=1, seed=8, require_diagnostics=False),
                     out=tmp_path, progress=False)
    finally:
        del REGISTRY["always_breaks"]
    table = out.summary()
    broken = table[table["refuter"] == "always_breaks"].iloc[0]
    assert broken["verdict"] == "inconclusive" and "a broken test" in broken["detail"]
    rcc = table[table["refuter"] == "random_common_cause"].iloc[0]
    # the real estimate is the given result's (the refits use an analysis fitted anew)
    assert rcc["estimate"] == pytest.approx(float(np.mean(result.effect_draws["total"])))
    assert rcc["verdict"] == "pass" and rcc["seconds"] > 0
    manifest = json.loads((tmp_path / "refute_manifest.json").read_text())
    assert manifest["options"]["seed"] == 8 and manifest["tests"] == ["always_breaks",
                                                                      "random_common_cause"]
    assert manifest["settings"]["random_seed"] == 4 and "pymc" in manifest["versions"]
    assert manifest["data_hash"] and manifest["refits"]["run"] == 1
    written = pd.read_csv(tmp_path / "refutations.csv")
    assert list(written.columns) == list(table.columns)
    assert written["detail"].tolist() == table["detail"].tolist()

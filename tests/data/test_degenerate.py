"""Degenerate data stop before sampling, each with its own message (or warning).

Every case of issue 13 has a test that matches its message; the healthy neighbours of
each case (a city-level control beside varying intercepts, a control correlated but
not collinear with the treatment) pass without a word. Nothing here samples.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.data.panel import validate_panel
from vagg_bayes.equations import equation_designs
from vagg_bayes.errors import DataError, DataWarning, SpecError
from vagg_bayes.spec import Spec

SOURCE = "panel.csv"


def panel(n_units=60, n_waves=3, n_cities=8, seed=0) -> pd.DataFrame:
    """Firms in cities over waves: a firm-level treatment, a mediator, two controls."""
    rng = np.random.default_rng(seed)
    firm = np.repeat(np.arange(n_units), n_waves)
    wave = np.tile(np.arange(n_waves), n_units)
    city = (np.arange(n_units) % n_cities)[firm]
    va = rng.normal(size=firm.size)
    m = 0.5 * va + rng.normal(size=firm.size)
    return pd.DataFrame({
        "firm": firm, "wave": wave, "city": np.array([f"c{j}" for j in range(n_cities)])[city],
        "va": va, "m": m, "size": rng.normal(size=firm.size),
        "pop": rng.normal(size=n_cities)[city],  # a city-level control
        "y": 0.3 * va + 0.4 * m + rng.normal(size=firm.size),
    })


def spec(**changes) -> Spec:
    base = dict(outcome="y", treatment="va", controls=("size",), unit="firm", group="city",
                time="wave")
    return Spec(**{**base, **changes})


def check(df: pd.DataFrame, s: Spec):
    """Everything before sampling: validation, designs, degenerate checks."""
    return equation_designs(validate_panel(df, s, source=SOURCE), s, source=SOURCE)


def silent(df, s):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return check(df, s)


# --------------------------------------------------------------------------- errors


def test_healthy_panel_passes_silently():
    designs, _ = silent(panel(), spec(mediators=("m",), controls=("size", "pop")))
    assert set(designs) == {"outcome", "m"}


def test_constant_outcome():
    with pytest.raises(DataError, match=r"Outcome 'y' in panel\.csv has a single value \(2\.5\) "
                                        r"in every row, so there is no variation"):
        check(panel().assign(y=2.5), spec())


@pytest.mark.parametrize("value, lacking", [(0, "1s"), (1, "0s")])
def test_binary_outcome_that_never_varies(value, lacking):
    with pytest.raises(DataError, match=rf"Outcome 'y' in panel\.csv is {value} in every row "
                                        rf"\(family = \"bernoulli\"\).*no {lacking} to compare"):
        check(panel().assign(y=value), spec(family="bernoulli"))


def test_constant_mediator():
    with pytest.raises(DataError, match=r"Mediator 'm' named in \[variables\]\.mediators has a "
                                        r"single value \(0\.0\) in every row of panel\.csv.*"
                                        r"Remove 'm' from \[variables\]\.mediators"):
        check(panel().assign(m=0.0), spec(mediators=("m",)))


def test_control_identical_to_treatment():
    df = panel()
    with pytest.raises(DataError, match=r"Column 'copy' named in \[variables\]\.controls is "
                                        r"identical to the treatment 'va'"):
        check(df.assign(copy=df.va), spec(controls=("size", "copy")))


def test_control_a_linear_function_of_the_treatment_is_named_with_its_formula():
    df = panel()
    with pytest.raises(DataError, match=r"collinear: lin = 2·va \+ 1 in every row .*"
                                        r"Remove 'lin'"):
        check(df.assign(lin=2 * df.va + 1), spec(controls=("size", "lin")))


def test_control_linear_in_other_controls_is_named():
    df = panel()
    with pytest.raises(DataError, match=r"total = size \+ 3·other"):
        check(df.assign(other=df.m, total=df["size"] + 3 * df.m),
              spec(controls=("size", "other", "total"), unit=None, time=None))


def test_control_nearly_collinear_with_treatment_warns():
    df = panel()
    rng = np.random.default_rng(1)
    near = df.va + 0.01 * rng.normal(size=len(df))
    with pytest.warns(DataWarning, match=r"the controls explain 99\.9\d*% of the variance of "
                                         r"the treatment 'va' \(most correlated: near"):
        check(df.assign(near=near), spec(controls=("size", "near")))


def test_correlated_control_is_fine():
    df = panel()
    noise = np.random.default_rng(2).normal(size=len(df))
    silent(df.assign(related=df.va + 0.5 * noise), spec(controls=("size", "related")))


def test_control_that_relabels_the_groups():
    df = panel()
    with pytest.raises(DataError, match=r"Control 'district' in panel\.csv re-labels the groups "
                                        r"of 'city': each of its 8 categories belongs to exactly "
                                        r"one group.*its 7 indicators and the intercept"):
        check(df.assign(district="d-" + df.city), spec(controls=("size", "district")))


def test_city_level_control_with_varying_intercepts_is_fine():
    designs, _ = silent(panel(), spec(controls=("size", "pop")))
    assert "pop" in designs["outcome"].terms


def test_coarser_grouping_control_is_fine():
    df = panel()
    region = df.city.map(lambda c: "east" if int(c[1:]) % 2 else "west")
    silent(df.assign(region=region), spec(controls=("size", "region")))


def test_numeric_copy_of_group_labels_warns():
    df = panel()
    codes = pd.factorize(df.city)[0] + 1
    with pytest.warns(DataWarning, match=r"Control 'city_no' in panel\.csv equals the group "
                                         r"labels of 'city'"):
        check(df.assign(city=codes, city_no=codes), spec(controls=("size", "city_no")))


def test_group_level_columns_that_saturate_the_groups():
    """Two cities and a city-level control: nothing left to identify sd(city).

    With the intercept, two group-level columns for two groups; sd(city) and the
    control's coefficient are separated by the prior alone.
    """
    df = panel(n_cities=2)
    with pytest.raises(DataError, match=r"the columns pop take one value per group of 'city'; "
                                        r"with the intercept they are 2 columns for 2 groups"):
        check(df, spec(controls=("size", "pop"), unit=None, time=None))


def test_group_level_control_with_enough_groups_is_fine():
    silent(panel(n_cities=3), spec(controls=("size", "pop"), unit=None, time=None))


def test_outcome_constant_within_every_unit():
    df = panel()
    with pytest.raises(DataError, match=r"Outcome 'y' in panel\.csv never changes within a unit "
                                        r"of 'firm'.*unit_effects = \"none\""):
        check(df.assign(y=df.firm * 0.1), spec())


def test_outcome_an_exact_function_of_the_regressors():
    df = panel()
    with pytest.raises(DataError, match=r"'y' in panel\.csv is an exact linear function of its "
                                        r"regressors"):
        check(df.assign(y=2 * df.va - df["size"]), spec(unit=None, time=None))


# --------------------------------------------------------------------------- groups


def test_single_row_groups_with_a_varying_slope_warn():
    df = panel(n_waves=1)
    df.loc[[0, 1], "city"] = ["lonely-1", "lonely-2"]
    with pytest.warns(DataWarning, match=r"2 of 10 groups of 'city' in panel\.csv have a single "
                                         r"row \('lonely-1', 'lonely-2'\)\. With a group-varying "
                                         r"slope of 'va'"):
        check(df, spec(unit=None, time=None, varying_slope=True))


def test_single_row_groups_without_varying_slope_are_fine():
    df = panel(n_waves=1)
    df.loc[[0], "city"] = "lonely"
    silent(df, spec(unit=None, time=None))


def test_every_group_a_single_row_warns():
    df = panel(n_waves=1)
    df["city"] = [f"g{i}" for i in range(len(df))]
    with pytest.warns(DataWarning, match=r"Every group of 'city' in panel\.csv has a single row"):
        check(df, spec(unit=None, time=None))


# --------------------------------------------------------------------------- scales


def test_outcome_in_billions_is_fine():
    df = panel()
    silent(df.assign(y=df.y * 1e9), spec())


def test_outcome_beyond_the_verified_scale():
    df = panel()
    with pytest.raises(DataError, match=r"'y' in panel\.csv has an SD of .*e\+15, outside the "
                                        r"range.*divide it by 1e\+15"):
        check(df.assign(y=df.y * 1e15), spec())


def test_outcome_varying_far_behind_its_leading_digits():
    df = panel()
    with pytest.raises(DataError, match=r"'y' in panel\.csv varies only far behind its leading "
                                        r"digits.*Subtract a constant"):
        check(df.assign(y=df.y + 1e9), spec())


def test_numbers_whose_squares_overflow():
    df = panel()
    df.loc[4, "size"] = 1e200
    with pytest.raises(DataError, match=r"Column 'size' \(\[variables\]\.controls\) in panel\.csv "
                                        r"holds 1e\+200 \(row 5\): numbers beyond 1e\+100 "
                                        r"overflow"):
        check(df, spec())


def test_complex_control():
    df = panel()
    with pytest.raises(DataError, match=r"Control 'z' .* holds complex numbers"):
        check(df.assign(z=df["size"] + 1j), spec(controls=("size", "z")))


def test_blank_column_name_in_spec():
    with pytest.raises(SpecError, match=r"\[data\]\.group is '', not a column name"):
        spec(group="")


# --------------------------------------------------------------------------- command line


def test_cli_stops_before_sampling_and_prints_data_warnings(tmp_path, capsys, monkeypatch):
    """A degenerate panel exits 2 with its message; a weak one prints a warning line.

    The weak one then goes on to the model (replaced here by a sentinel: nothing is
    compiled).
    """
    import vagg_bayes.analysis
    from vagg_bayes.cli import main

    class Reached(Exception):
        pass

    def sentinel(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(vagg_bayes.analysis, "EquationModel", sentinel)
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text('[data]\ngroup = "city"\n[variables]\noutcome = "y"\n'
                         'treatment = "va"\ncontrols = ["size"]\n[model]\nvarying_slope = true\n')
    data = tmp_path / "panel.csv"
    df = panel(n_waves=1)
    df.assign(y=1.0).to_csv(data, index=False)
    code = main(["estimate", str(spec_path), "--data", str(data), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Outcome 'y' in panel.csv has a single value" in err
    df.loc[[0], "city"] = "lonely"
    df.to_csv(data, index=False)
    with pytest.raises(Reached):
        main(["estimate", str(spec_path), "--data", str(data), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert err.startswith("vagg-bayes: warning (data): 1 of 9 groups of 'city' in panel.csv "
                          "have a single row")

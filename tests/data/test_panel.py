"""Reading and validating a user's panel: one test per message, plus round-trips."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.data.panel import (
    MIN_ROWS,
    load_panel,
    read_table,
    repeated_units,
    validate_panel,
)
from vagg_bayes.errors import DataError
from vagg_bayes.spec import Spec


@pytest.fixture
def panel() -> pd.DataFrame:
    """Four pupils in two schools, observed in three waves (12 rows)."""
    return pd.DataFrame(
        {
            "pupil": ["p1", "p1", "p1", "p2", "p2", "p2", "p3", "p3", "p3", "p4", "p4", "p4"],
            "school": ["A"] * 6 + ["B"] * 6,
            "wave": [1, 2, 3] * 4,
            "y": [1.0, 1.5, 2.1, 0.3, 0.9, 1.2, 2.2, 2.0, 2.8, 1.1, 1.7, 1.9],
            "x": [0.1, 0.4, 0.5, 0.2, 0.3, 0.9, 0.8, 0.6, 0.7, 0.0, 0.2, 0.5],
            "size": [3.0, 3.1, 3.2, 2.0, 2.2, 2.1, 4.0, 4.1, 4.3, 1.0, 1.2, 1.1],
            "kind": ["a", "a", "a", "b", "b", "b", "a", "a", "a", "c", "c", "c"],
            "note": ["unused"] * 12,
        }
    )


@pytest.fixture
def spec() -> Spec:
    return Spec(
        outcome="y",
        treatment="x",
        controls=("size", "kind"),
        unit="pupil",
        group="school",
        time="wave",
    )


# --------------------------------------------------------------------------- read_table


def test_csv_round_trip(tmp_path, panel):
    path = tmp_path / "panel.csv"
    panel.to_csv(path, index=False)
    back = read_table(path)
    pd.testing.assert_frame_equal(back, panel, check_dtype=False)


def test_csv_gz_and_txt_are_read_as_csv(tmp_path, panel):
    gz = tmp_path / "panel.csv.gz"
    panel.to_csv(gz, index=False, compression="gzip")
    txt = tmp_path / "panel.TXT"
    panel.to_csv(txt, index=False)
    for path in (gz, txt):
        pd.testing.assert_frame_equal(read_table(path), panel, check_dtype=False)


@pytest.mark.parametrize("name", ["panel.parquet", "panel.pq"])
def test_parquet_round_trip(tmp_path, panel, name):
    path = tmp_path / name
    panel.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(read_table(path), panel, check_dtype=False)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"'.*nowhere\.csv' does not exist\. Check the path"):
        read_table(tmp_path / "nowhere.csv")


def test_directory_is_not_a_file(tmp_path):
    folder = tmp_path / "panel.parquet"
    folder.mkdir()
    with pytest.raises(DataError, match=r"panel\.parquet' is a directory.*single CSV or Parquet"):
        read_table(folder)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"blank\.csv' is empty \(0 bytes\)\. Write the panel"):
        read_table(path)


def test_whitespace_only_csv_is_empty(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n\n")
    with pytest.raises(DataError, match=r"blank\.csv' is empty .*header row"):
        read_table(path)


def test_header_only_csv_has_no_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("y,x,size\n")
    with pytest.raises(DataError, match=r"header\.csv' has no data rows \(columns: y, x, size\)"):
        read_table(path)


def test_parquet_without_rows(tmp_path, panel):
    path = tmp_path / "none.parquet"
    panel.iloc[:0].to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"none\.parquet' has no data rows"):
        read_table(path)


def test_unsupported_extension_lists_supported(tmp_path, panel):
    path = tmp_path / "panel.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(
        DataError,
        match=r"panel\.xlsx' has an unsupported type \('\.xlsx'\)\. Supported endings are: "
        r"\.csv, \.csv\.gz, \.txt, \.parquet, \.pq\. Save the panel as CSV or Parquet",
    ):
        read_table(path)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(
        DataError, match=r"broken\.parquet' could not be read as Parquet.*re-export"
    ):
        read_table(path)


def test_ragged_csv(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("y,x\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"ragged\.csv' could not be read as CSV \(.*same number"):
        read_table(path)


def test_corrupt_gzip(tmp_path, panel):
    path = tmp_path / "cut.csv.gz"
    data = gzip.compress(panel.to_csv(index=False).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.csv\.gz' could not be read as CSV"):
        read_table(path)


def test_non_utf8_csv(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("城市,y\n北京,1\n上海,2\n".encode("gbk"))
    with pytest.raises(DataError, match=r"gbk\.csv' is not UTF-8 text.*Save it as CSV UTF-8"):
        read_table(path)


def test_semicolon_csv(tmp_path, panel):
    path = tmp_path / "semi.csv"
    panel.to_csv(path, index=False, sep=";")
    with pytest.raises(DataError, match=r"semi\.csv' was read as a single column.*semicolons"):
        read_table(path)


# --------------------------------------------------------------------------- validate_panel


def test_valid_panel_returns_spec_columns(panel, spec):
    out = validate_panel(panel, spec)
    assert list(out.columns) == spec.columns
    assert out is not panel
    assert out["x"].dtype == np.float64
    assert out["kind"].tolist() == panel["kind"].tolist()
    assert isinstance(out.index, pd.RangeIndex)


def test_caller_frame_is_unchanged(panel, spec):
    panel["y"] = panel["y"] > 1.5  # a bool outcome, which validation turns into 0/1
    panel.index = list("abcdefghijkl")
    before = panel.copy(deep=True)
    out = validate_panel(panel.copy(deep=False), spec.with_(family="bernoulli"))
    out.loc[0, "size"] = -99.0
    pd.testing.assert_frame_equal(panel, before)
    assert out["y"].dtype == np.int64


def test_booleans_become_integers(panel, spec):
    panel["x"] = [True, False] * 6
    panel["flag"] = [False, True, True] * 4
    out = validate_panel(panel, spec.with_(controls=("size", "flag")))
    assert out["x"].dtype == np.int64 and out["flag"].dtype == np.int64
    assert out["x"].tolist() == [1, 0] * 6


def test_nullable_and_object_numbers_become_plain_numpy(panel, spec):
    panel["x"] = pd.array([1, 2, 3, 4] * 3, dtype="Int64")
    panel["size"] = pd.Series(panel["size"].tolist(), dtype=object)
    out = validate_panel(panel, spec)
    assert out["x"].dtype == np.int64
    assert out["size"].dtype == np.float64


def test_column_not_in_data_suggests_closest(panel, spec):
    with pytest.raises(
        DataError,
        match=r"Column 'shcool' named in \[data\]\.group is not in panel\.csv\. Columns are: "
        r"pupil, school, wave, y, x, size, kind, note\. Did you mean 'school'\?",
    ):
        validate_panel(panel, spec.with_(group="shcool"), source="panel.csv")


def test_column_not_in_data_without_close_name(panel, spec):
    with pytest.raises(
        DataError,
        match=r"Column 'income' named in \[variables\]\.controls is not in data\. "
        r"Columns are: .*\. Fix \[variables\]\.controls in the spec or add the column",
    ):
        validate_panel(panel, spec.with_(controls=("size", "income")))


def test_duplicate_column_name(panel, spec):
    twice = pd.concat([panel, panel[["x"]]], axis=1)
    with pytest.raises(
        DataError, match=r"Column 'x' named in \[variables\]\.treatment appears more than once"
    ):
        validate_panel(twice, spec)


def test_non_numeric_value_in_numeric_role(panel, spec):
    panel["x"] = panel["x"].astype(str)
    panel.loc[4, "x"] = "n/a"
    panel.loc[0, "x"] = "high"
    with pytest.raises(
        DataError,
        match=r"Column 'x' named in \[variables\]\.treatment must be numeric, but row 1 of "
        r"panel\.csv holds 'high'\. Clean or recode the column",
    ):
        validate_panel(panel, spec, source="panel.csv")


def test_number_stored_as_text_gets_a_hint(panel, spec):
    panel["y"] = panel["y"].astype(str)
    with pytest.raises(DataError, match=r"'y' named in \[variables\]\.outcome.*pd\.to_numeric"):
        validate_panel(panel, spec)


def test_missing_values_are_counted_and_located(panel, spec):
    panel.loc[[2, 7], "size"] = np.nan
    panel.loc[5, "kind"] = "  "
    with pytest.raises(
        DataError,
        match=r"Column 'size' \(\[variables\]\.controls\) in panel\.csv has 2 missing or empty "
        r"values \(rows 3, 8\)\. Drop or impute them.*Other columns with missing values: "
        r"'kind' \(1\)",
    ):
        validate_panel(panel, spec, source="panel.csv")


def test_missing_group_label(panel, spec):
    panel.loc[0, "school"] = None
    with pytest.raises(
        DataError, match=r"'school' \(\[data\]\.group\).*1 missing or empty value \(row 1\)"
    ):
        validate_panel(panel, spec)


def test_infinite_values(panel, spec):
    panel.loc[3, "y"] = np.inf
    with pytest.raises(
        DataError,
        match=r"Column 'y' \(\[variables\]\.outcome\) in data has 1 infinite value \(row 4\).*"
        r"Replace or drop them",
    ):
        validate_panel(panel, spec)


def test_duplicate_unit_time_rows(panel, spec):
    panel.loc[1, "wave"] = 1
    with pytest.raises(
        DataError,
        match=r"panel\.csv has 2 rows that share a \(pupil, wave\) pair.*pupil = 'p1', "
        r"wave = 1 appears 2 times.*drop or aggregate the duplicate rows",
    ):
        validate_panel(panel, spec, source="panel.csv")


def test_duplicates_allowed_without_unit(panel, spec):
    panel["wave"] = 1
    validate_panel(panel, spec.with_(unit=None))


def test_duplicate_units_without_time(panel, spec):
    # one row per unit is fine without a time column ...
    once = panel.drop_duplicates("pupil").reset_index(drop=True)
    once = pd.concat([once.assign(pupil=once["pupil"] + s) for s in ("a", "b", "c")])
    out = validate_panel(once, spec.with_(time=None))
    assert out["pupil"].is_unique
    # ... repeated units are not: they would count as independent rows
    with pytest.raises(
        DataError,
        match=r"panel\.csv has 12 rows that share a pupil value with another row; e\.g\. "
        r"pupil = 'p1' appears 3 times \(first at row 1\)\. Without \[data\]\.time each "
        r"unit \(\[data\]\.unit\) may appear once.*set \[data\]\.time to the period column.*"
        r"aggregate to one row per unit",
    ):
        validate_panel(panel, spec.with_(time=None), source="panel.csv")


def test_duplicate_units_without_time_arbitrary_names():
    frame = pd.DataFrame(
        {
            "outlet": [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 12],
            "sales": np.linspace(0.0, 1.0, 11),
            "ad_spend": [0.2, 0.9, 0.1, 0.5, 0.4, 0.3, 0.8, 0.6, 0.7, 0.0, 0.3],
        }
    )
    s = Spec(outcome="sales", treatment="ad_spend", unit="outlet")
    with pytest.raises(
        DataError,
        match=r"shops\.parquet has 2 rows that share a outlet value.*outlet = 12 appears 2 "
        r"times \(first at row 6\)",
    ):
        validate_panel(frame, s, source="shops.parquet")
    validate_panel(frame.drop(index=10), s)


def test_constant_treatment(panel, spec):
    panel["x"] = 0.5
    with pytest.raises(
        DataError,
        match=r"Treatment column 'x' in data has a single value \(0\.5\).*effect is not identified",
    ):
        validate_panel(panel, spec)


def test_bernoulli_outcome_must_be_binary(panel, spec):
    panel["y"] = [0, 1, 2, 0, 1, 0, 1, 0.5, 0, 1, 1, 0]
    with pytest.raises(
        DataError,
        match=r"Outcome column 'y' in data must be 0/1 for family = \"bernoulli\", but it also "
        r"holds 0\.5, 2\.0\. Recode the outcome to 0/1",
    ):
        validate_panel(panel, spec.with_(family="bernoulli"))


def test_bernoulli_accepts_bool_and_float_zero_one(panel, spec):
    panel["y"] = [0.0, 1.0] * 6
    out = validate_panel(panel, spec.with_(family="bernoulli"))
    assert out["y"].dtype == np.int64
    assert set(out["y"]) == {0, 1}


def test_single_group(panel, spec):
    panel["school"] = "A"
    with pytest.raises(
        DataError,
        match=r"Column 'school' named in \[data\]\.group has a single group \('A'\).*"
        r"at least 2 groups\. Remove \[data\]\.group",
    ):
        validate_panel(panel, spec)


def test_group_level_treatment_passes_with_varying_intercepts(panel, spec):
    panel["x"] = np.where(panel["school"] == "A", 1.0, 0.0)  # a school-level policy
    # time-invariant, so not identified within pupils: random or no unit effects
    for effects in ("random", "none"):
        out = validate_panel(panel, spec.with_(unit_effects=effects))
        assert out["x"].tolist() == panel["x"].tolist()
    out = validate_panel(panel, spec.with_(unit=None))  # no unit effects at all
    assert out["x"].tolist() == panel["x"].tolist()


def test_group_level_treatment_fails_with_varying_slope(panel, spec):
    panel["x"] = np.where(panel["school"] == "A", 1.0, 0.0)
    with pytest.raises(
        DataError,
        match=r"Treatment 'x' in data is constant within every group of 'school'.*not "
        r"identified\. Set varying_slope = false",
    ):
        validate_panel(panel, spec.with_(varying_slope=True))


def test_varying_slope_with_within_group_variation_passes(panel, spec):
    validate_panel(panel, spec.with_(varying_slope=True))


def test_group_level_mediator_fails_as_varying_mediator(panel, spec):
    panel["med"] = np.where(panel["school"] == "A", 0.3, 0.7)
    varying = spec.with_(
        controls=("kind",), mediators=("med", "size"), varying_mediator="med", unit_effects="random"
    )
    with pytest.raises(
        DataError,
        match=r"Mediator 'med' in data is constant within every group of 'school'.*"
        r"Remove varying_mediator",
    ):
        validate_panel(panel, varying)
    validate_panel(panel, varying.with_(varying_mediator="size"))  # varies within schools


# --------------------------------------------------------------------------- unit effects


def test_repeated_units_rule(panel, spec):
    assert repeated_units(panel, spec)  # pupils seen in three waves
    assert repeated_units(panel, spec.with_(unit_effects="fixed"))
    assert repeated_units(panel, spec.with_(unit_effects="random"))
    assert not repeated_units(panel, spec.with_(unit_effects="none"))
    assert not repeated_units(panel, spec.with_(time=None))
    assert not repeated_units(panel, spec.with_(unit=None))
    first_wave = panel[panel["wave"] == 1]
    assert not repeated_units(first_wave, spec)  # each pupil once
    assert not repeated_units(panel.drop(columns="pupil"), spec)  # e.g. school-wave rows


@pytest.mark.parametrize("effects", ["within", "fixed"])
def test_time_invariant_treatment_not_identified_within_units(panel, spec, effects):
    panel["x"] = panel["pupil"].map({"p1": 0.1, "p2": 0.4, "p3": 0.9, "p4": 0.6})
    with pytest.raises(
        DataError,
        match=r"Treatment 'x' in panel\.csv is constant within every unit of 'pupil' \(no "
        r"unit's value changes over 'wave'\), so its effect is not identified within units "
        rf"\(\[model\]\.unit_effects = \"{effects}\".*Use a time-varying measure of the "
        r"treatment, or set \[model\] unit_effects = \"random\" \(assumes the unit effects "
        r"are independent of the treatment\) or \"none\"",
    ):
        validate_panel(panel, spec.with_(unit_effects=effects), source="panel.csv")


@pytest.mark.parametrize("effects", ["random", "none"])
def test_time_invariant_treatment_passes_without_within_slopes(panel, spec, effects):
    panel["x"] = panel["pupil"].map({"p1": 0.1, "p2": 0.4, "p3": 0.9, "p4": 0.6})
    validate_panel(panel, spec.with_(unit_effects=effects))


def test_time_invariant_treatment_passes_without_repeated_units(panel, spec):
    once = panel.drop_duplicates("pupil").reset_index(drop=True)
    once = pd.concat([once.assign(pupil=once["pupil"] + s) for s in ("a", "b", "c")])
    assert not repeated_units(once, spec)
    validate_panel(once, spec)  # one wave per pupil: unit effects do not apply


def test_treatment_varying_in_one_unit_is_enough(panel, spec):
    panel["x"] = panel["pupil"].map({"p1": 0.1, "p2": 0.4, "p3": 0.9, "p4": 0.6})
    panel.loc[11, "x"] = 0.7  # p4 changes in wave 3
    validate_panel(panel, spec)


@pytest.mark.parametrize("effects", ["within", "fixed"])
def test_time_invariant_mediator_not_identified_within_units(effects):
    rng = np.random.default_rng(3)
    shop = np.repeat(["s1", "s2", "s3", "s4", "s5"], 4)
    quarter = np.tile(["q1", "q2", "q3", "q4"], 5)
    frame = pd.DataFrame(
        {
            "shop": shop,
            "region_code": np.repeat([10, 10, 20, 20, 30], 4),
            "quarter": quarter,
            "revenue": rng.normal(size=20),
            "ad_spend": rng.normal(size=20),
            "staff_skill": np.repeat([1.0, 2.0, 1.5, 3.0, 2.5], 4),  # fixed per shop
            "footfall": rng.normal(size=20),
        }
    )
    s = Spec(
        outcome="revenue",
        treatment="ad_spend",
        mediators=("footfall", "staff_skill"),
        unit="shop",
        group="region_code",
        time="quarter",
        unit_effects=effects,
    )
    with pytest.raises(
        DataError,
        match=r"Mediator 'staff_skill' in shops\.csv is constant within every unit of 'shop'.*"
        r"its effect on the outcome is not identified within units.*Use a time-varying "
        r"measure of the mediator, or set \[model\] unit_effects = \"random\".*or \"none\"",
    ):
        validate_panel(frame, s, source="shops.csv")
    validate_panel(frame, s.with_(unit_effects="random"))
    validate_panel(frame, s.with_(unit_effects="none"))
    validate_panel(frame, s.with_(mediators=("footfall",)))


def test_single_level_categorical_control(panel, spec):
    panel["kind"] = "a"
    with pytest.raises(
        DataError,
        match=r"Control 'kind' named in \[variables\]\.controls has a single category \('a'\).*"
        r"Remove it from \[variables\]\.controls",
    ):
        validate_panel(panel, spec)


def test_control_identical_to_treatment(panel, spec):
    panel["x_copy"] = panel["x"]
    with pytest.raises(
        DataError,
        match=r"Column 'x_copy' named in \[variables\]\.controls is identical to the treatment "
        r"'x'.*Remove 'x_copy'",
    ):
        validate_panel(panel, spec.with_(controls=("size", "x_copy")))


def test_too_few_rows(panel, spec):
    with pytest.raises(
        DataError, match=rf"small\.csv has 7 rows; at least {MIN_ROWS} are needed.*full panel"
    ):
        validate_panel(panel.head(7), spec, source="small.csv")


def test_minimal_spec_without_structure(panel):
    out = validate_panel(panel, Spec(outcome="y", treatment="x"))
    assert list(out.columns) == ["y", "x"]


# --------------------------------------------------------------------------- load_panel


@pytest.mark.parametrize("name", ["panel.csv", "panel.parquet"])
def test_load_panel_round_trip(tmp_path, panel, spec, name):
    path = tmp_path / name
    if name.endswith(".csv"):
        panel.to_csv(path, index=False)
    else:
        panel.to_parquet(path, index=False)
    out = load_panel(path, spec)
    expected = validate_panel(panel, spec)
    pd.testing.assert_frame_equal(out, expected, check_dtype=False)


def test_load_panel_names_the_file(tmp_path, panel, spec):
    path = tmp_path / "survey.csv"
    panel.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"Column 'treatmnt' named in .* not in survey\.csv\."):
        load_panel(str(path), spec.with_(treatment="treatmnt"))

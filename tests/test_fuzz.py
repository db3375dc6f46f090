"""Property-based tests: no input makes vagg_bayes crash with a traceback.

Generated spec files and data frames (random column names with non-ASCII characters,
every dtype pandas offers, missing and infinite values, duplicated keys and columns,
empty strings, huge and tiny magnitudes) go through everything that runs before
sampling, and a few through the command line. Each must end in a result or in one of
the package's own errors (:class:`~vagg_bayes.errors.VaggBayesError`); any other
exception, or a numeric warning (overflow, division by zero), fails the test with the
example that caused it.

- :func:`test_spec_text_loads_or_is_a_spec_error`: spec files as text.
- :func:`test_random_frames_validate_or_fail_cleanly`: arbitrary frames and specs
  through ``validate_panel`` and ``equation_designs`` (with the degenerate checks).
- :func:`test_plausible_panels_reach_designs_or_fail_cleanly`: well-formed panels with a
  few defects injected (the deeper paths: designs, collinearity, group checks).
- :func:`test_command_line_up_to_sampling`: files on disk through ``main([...])``. The
  model's compilation and sampling are replaced by a sentinel (``EquationModel`` in
  :mod:`vagg_bayes.analysis`): everything before them runs for real (argument
  parsing, reading the spec and the CSV / Parquet file, the output-folder check,
  validation, the designs); sampling itself is covered by the slow tests.
- :func:`test_command_line_with_real_sampling` (slow): a handful of plausible panels
  sampled for real with tiny draws.

The examples are derandomised (the same on every run; CI is deterministic). Set
``VAGG_FUZZ_EXAMPLES`` to a larger number to search longer locally.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vagg_bayes.cli import main
from vagg_bayes.data.panel import validate_panel
from vagg_bayes.equations import equation_designs
from vagg_bayes.errors import DataWarning, VaggBayesError
from vagg_bayes.spec import Spec, load_spec

SCALE = float(os.environ.get("VAGG_FUZZ_EXAMPLES", "1"))


def _settings(n: int) -> settings:
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much, HealthCheck.large_base_example,
                               HealthCheck.function_scoped_fixture],
    )


# --------------------------------------------------------------------------- strategies

NAME_CHARS = st.one_of(
    st.sampled_from(list("abcxyz_019 -.[]:~,;'\"#=\\/")),
    st.sampled_from(list("城市企业出口韧性é߷ßÆØ𝔘😀")),
    st.characters(codec="utf-8", exclude_categories=("Cs",)),
)
NAMES = st.one_of(st.text(NAME_CHARS, min_size=1, max_size=8),
                  st.sampled_from(["", " ", "y", "t", "城市", "1e100", "True", "nan"]))

FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e300, -1e300, 1e-300, 5e-324, 1e9, 1e-9, 1.5e308,
                     math.nan, math.inf, -math.inf]),
)
TEXT_VALUES = st.one_of(
    st.sampled_from(["", " ", "a", "b", "城", "1.5", "nan", "inf", "NA", "None", "0", "1",
                     "true", "\t"]),
    st.text(NAME_CHARS, max_size=4),
)


@st.composite
def columns(draw, n: int):
    """One column of ``n`` values in a random dtype."""
    kind = draw(st.sampled_from([
        "float", "small_int", "big_int", "bool", "text", "category", "Int64", "Float64",
        "boolean", "string", "object", "numeric_text", "datetime", "complex", "binary",
    ]))
    if kind == "float":
        return pd.Series(draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype="float64")
    if kind == "small_int":
        return pd.Series(draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)),
                         dtype="int64")
    if kind == "big_int":
        return pd.Series(draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=n,
                                       max_size=n)), dtype="int64")
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "binary":
        return pd.Series(draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n)))
    if kind in ("text", "category", "string"):
        values = draw(st.lists(TEXT_VALUES, min_size=n, max_size=n))
        dtype = {"text": object, "category": "category", "string": "string"}[kind]
        return pd.Series(values, dtype=dtype)
    if kind == "Int64":
        values = draw(st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=n,
                               max_size=n))
        return pd.Series(values, dtype="Int64")
    if kind == "Float64":
        values = draw(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=n,
                               max_size=n))
        return pd.Series(values, dtype="Float64")
    if kind == "boolean":
        values = draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n))
        return pd.Series(values, dtype="boolean")
    if kind == "numeric_text":
        values = draw(st.lists(st.floats(-100, 100).map(lambda v: f"{v:.3g}"), min_size=n,
                               max_size=n))
        return pd.Series(values, dtype=object)
    if kind == "datetime":
        values = draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n))
        return pd.Series(pd.to_datetime(values, unit="s"))
    if kind == "complex":
        values = draw(st.lists(st.complex_numbers(max_magnitude=1e3), min_size=n,
                               max_size=n))
        return pd.Series(values, dtype=complex)
    values = draw(st.lists(st.one_of(st.none(), FLOATS, st.integers(-3, 3), TEXT_VALUES,
                                     st.booleans()), min_size=n, max_size=n))
    return pd.Series(values, dtype=object)


@st.composite
def specs(draw, names: list[str]):
    """Draw spec fields over the given names, mostly one role per column.

    Now and then a name not in the data, a column in two roles or an invalid setting (a
    SpecError or a DataError is then the expected outcome).
    """
    pool = list(draw(st.permutations(names))) if names else []

    def often() -> bool:  # True 9 times in 10 (sampled_from shrinks to the first)
        return draw(st.sampled_from([True] * 9 + [False]))

    def name():
        if pool and often():
            return pool.pop()
        return draw(NAMES) if not names or draw(st.booleans()) else draw(st.sampled_from(names))

    def optional():
        return name() if draw(st.booleans()) else None

    def rare(common, odd):  # odd values once in 20 draws
        return draw(st.sampled_from(common * 19 + odd))

    fields = {"outcome": name(), "treatment": name()}
    fields["controls"] = tuple(name() for _ in range(draw(st.integers(0, min(3, len(pool))))))
    fields["mediators"] = tuple(name() for _ in range(draw(st.integers(0, min(2, len(pool))))))
    for role in ("unit", "group", "time"):
        fields[role] = name() if pool and draw(st.booleans()) else None
    family = rare(["gaussian", "bernoulli"], ["poisson", ""])
    fields["family"] = family
    fields["varying_slope"] = (draw(st.booleans()) if fields["group"] is not None
                               else rare([False], [True]))
    fields["unit_effects"] = rare(["within", "none"] if family == "bernoulli" else
                                  ["within", "fixed", "random", "none"], ["x", "random"])
    fields["group_time_effects"] = rare([None, None, False], [True])
    if fields["mediators"] and draw(st.booleans()):
        fields["varying_mediator"] = draw(st.one_of(st.sampled_from(fields["mediators"]),
                                                    NAMES))
    return fields


def _spec_or_none(fields: dict):
    try:
        return Spec(**fields)
    except VaggBayesError:
        return None


def _no_crash(call):
    """Run ``call``; the package's own errors are fine, anything else fails the test.

    Numeric warnings (overflow, invalid values) are errors here: they mean a check let
    through values that the arithmetic after it cannot handle. DataWarning is allowed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DataWarning)
        try:
            return call()
        except VaggBayesError as exc:
            assert str(exc).strip(), "an error without a message"
            return None


# --------------------------------------------------------------------------- spec files


def _toml_str(text: str) -> str:
    """Quote ``text`` as a TOML basic string (quotes, backslashes, controls escaped)."""
    out = []
    for ch in str(text):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if math.isfinite(value) else "nan"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return _toml_str(value)


def _toml(doc: dict) -> str:
    lines = []
    for section, body in doc.items():
        lines.append(f"[{_toml_str(section)}]")
        for key, value in body.items():
            if value is not None:
                lines.append(f"{_toml_str(key)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


SECTIONS = {"data": ["unit", "group", "time", "weights"],
            "variables": ["outcome", "treatment", "controls", "mediators", "outcomes"],
            "model": ["family", "varying_slope", "varying_mediator", "unit_effects",
                      "group_time_effects", "graph", "prior"],
            "sampler": ["draws"]}
VALUES = st.one_of(NAMES, st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
                   st.lists(NAMES, max_size=3), st.lists(st.integers(0, 3), max_size=2))


@st.composite
def spec_texts(draw):
    if draw(st.integers(0, 4)) == 0:  # raw text: broken TOML, odd bytes, BOMs
        return draw(st.one_of(
            st.text(max_size=80),
            st.sampled_from(["\ufeff[variables]\noutcome = \"y\"\ntreatment = \"t\"\n",
                             "[variables\n", "outcome = \"y\"", "[[data]]\nunit = \"a\"",
                             "data = 3", "[variables]\ncontrols = [1, \"a\"]\n"]),
        ))
    doc = {}
    for section in draw(st.lists(st.sampled_from(list(SECTIONS)), max_size=3, unique=True)):
        keys = draw(st.lists(st.sampled_from(SECTIONS[section]), max_size=4, unique=True))
        doc[section] = {k: draw(VALUES) for k in keys}
    return _toml(doc)


@_settings(200)
@given(text=spec_texts())
def test_spec_text_loads_or_is_a_spec_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("spec") / "spec.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _no_crash(lambda: load_spec(path))


# --------------------------------------------------------------------------- frames


@st.composite
def random_frames(draw):
    """(frame, spec fields): any columns, any dtypes, any names, duplicates allowed."""
    n = draw(st.sampled_from([20, 30, 12, 10, 3, 1, 0]))
    if draw(st.sampled_from([True] * 4 + [False])):  # mostly distinct, non-blank names
        names = draw(st.lists(NAMES.filter(str.strip), min_size=2, max_size=8, unique=True))
    else:
        names = draw(st.lists(NAMES, min_size=1, max_size=8))
    frame = pd.concat([draw(columns(n)).rename(name) for name in names], axis=1) \
        if n else pd.DataFrame({name: [] for name in dict.fromkeys(names)})
    return frame, draw(specs(list(dict.fromkeys(names))))


def _validation_path(frame: pd.DataFrame, spec: Spec):
    panel = validate_panel(frame, spec, source="fuzz.csv")
    return equation_designs(panel, spec, source="fuzz.csv")


@_settings(300)
@given(case=random_frames())
def test_random_frames_validate_or_fail_cleanly(case):
    frame, fields = case
    spec = _no_crash(lambda: Spec(**fields))
    if spec is not None:
        _no_crash(lambda: _validation_path(frame, spec))


@st.composite
def plausible_panels(draw):
    """Draw a firm-year-like panel that passes validation, then inject a few defects."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_units = draw(st.integers(10, 16))
    n_times = draw(st.integers(1, 4))
    n_groups = draw(st.integers(2, 4))
    unit = np.repeat(np.arange(n_units), n_times)
    time = np.tile(np.arange(n_times), n_units) + 2000
    group = (np.arange(n_units) % n_groups)[unit]
    names = draw(st.lists(NAMES.filter(str.strip), min_size=9, max_size=9, unique=True))
    y_name, t_name, c_name, k_name, m_name, u_name, g_name, s_name, odd_name = names
    n = unit.size
    t = rng.normal(size=n) if draw(st.booleans()) else rng.integers(0, 2, n).astype(float)
    frame = pd.DataFrame({
        y_name: rng.normal(size=n) * draw(st.sampled_from([1.0, 1e9, 1e-6])),
        t_name: t,
        c_name: rng.normal(size=n),
        k_name: rng.choice(["甲", "乙", "b"], n),
        m_name: rng.normal(size=n),
        u_name: unit,
        g_name: np.array(["城A", "城B", "城C", "城D"])[group],
        s_name: time,
    })
    frame[odd_name] = draw(columns(n))  # a column of any dtype, used as a control
    binary = draw(st.booleans())
    if binary:
        frame[y_name] = rng.integers(0, 2, n)
    fields = {
        "outcome": y_name, "treatment": t_name,
        "controls": tuple(draw(st.lists(st.sampled_from([c_name, k_name, odd_name]),
                                        max_size=3, unique=True))),
        "mediators": (m_name,) if draw(st.booleans()) else (),
        "unit": u_name if draw(st.booleans()) else None,
        "group": g_name if draw(st.booleans()) else None,
        "time": s_name if n_times > 1 and draw(st.booleans()) else None,
        "family": "bernoulli" if binary else "gaussian",
        "unit_effects": draw(st.sampled_from(["within", "none"] if binary else
                                             ["within", "fixed", "random", "none"])),
    }
    if fields["group"] is not None:
        fields["varying_slope"] = draw(st.booleans())
    if fields["unit"] is not None and fields["time"] is None:
        fields["unit"] = None  # one row per unit and period otherwise
    defects = draw(st.lists(st.sampled_from([
        "nan", "inf", "huge", "tiny", "constant_outcome", "constant_mediator",
        "control_is_treatment", "control_linear", "control_is_group", "group_as_control",
        "duplicate_row", "empty_string", "single_row_group", "text_in_number",
        "outcome_offset", "drop_column", "duplicate_column", "negative_zero",
    ]), max_size=2))
    for defect in defects:
        col = draw(st.sampled_from(list(frame.columns)))
        row = draw(st.integers(0, len(frame) - 1))
        try:
            if defect == "nan":
                numeric = pd.api.types.is_numeric_dtype(frame[col]) and \
                    not pd.api.types.is_complex_dtype(frame[col])
                frame[col] = frame[col].astype(float if numeric else object)
                frame.loc[row, col] = np.nan
            elif defect in ("inf", "huge", "tiny", "negative_zero") and \
                    pd.api.types.is_float_dtype(frame[col]):
                frame.loc[row, col] = {"inf": np.inf, "huge": 1e300, "tiny": 5e-324,
                                       "negative_zero": -0.0}[defect]
            elif defect == "constant_outcome":
                frame[y_name] = 1
            elif defect == "constant_mediator":
                frame[m_name] = 2.5
            elif defect == "control_is_treatment":
                frame[c_name] = frame[t_name]
            elif defect == "control_linear":
                frame[c_name] = 3 * frame[t_name] - 1
            elif defect == "control_is_group":
                frame[k_name] = frame[g_name].map(lambda g: f"copy-{g}")
            elif defect == "group_as_control":
                frame[c_name] = pd.factorize(frame[g_name])[0]
            elif defect == "duplicate_row":
                frame = pd.concat([frame, frame.iloc[[row]]], ignore_index=True)
            elif defect == "empty_string":
                frame[k_name] = frame[k_name].astype(object)
                frame.loc[row, k_name] = draw(st.sampled_from(["", " "]))
            elif defect == "single_row_group":
                frame[g_name] = frame[g_name].astype(object)
                frame.loc[row, g_name] = "lonely"
            elif defect == "text_in_number":
                frame[t_name] = frame[t_name].astype(object)
                frame.loc[row, t_name] = draw(TEXT_VALUES)
            elif defect == "outcome_offset":
                frame[y_name] = frame[y_name] + 1e12
            elif defect == "drop_column":
                frame = frame.drop(columns=[col])
            elif defect == "duplicate_column":
                frame = pd.concat([frame, frame[[col]]], axis=1)
        except (TypeError, ValueError, KeyError):  # a defect that does not apply here
            continue
    return frame, fields


@_settings(300)
@given(case=plausible_panels())
def test_plausible_panels_reach_designs_or_fail_cleanly(case):
    frame, fields = case
    spec = _no_crash(lambda: Spec(**fields))
    if spec is not None:
        _no_crash(lambda: _validation_path(frame, spec))


# --------------------------------------------------------------------------- command line


class ReachedSampling(Exception):
    """Raised in place of compiling the first model: everything before it ran."""


def _write_case(folder, frame: pd.DataFrame, fields: dict, parquet: bool):
    spec_path = folder / "spec.toml"
    doc = {"variables": {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()
                         if k in ("outcome", "treatment", "controls", "mediators")},
           "data": {k: fields[k] for k in ("unit", "group", "time") if fields.get(k)},
           "model": {k: fields[k] for k in ("family", "varying_slope", "unit_effects",
                                            "group_time_effects", "varying_mediator")
                     if fields.get(k) is not None}}
    spec_path.write_text(_toml(doc), encoding="utf-8")
    data_path = folder / ("panel.parquet" if parquet else "panel.csv")
    try:
        if parquet:
            frame.to_parquet(data_path)
        else:
            frame.to_csv(data_path, index=False)
    except Exception:  # a frame pandas or pyarrow cannot write: write it as text
        data_path = folder / "panel.csv"
        frame.astype(str).to_csv(data_path, index=False)
    return spec_path, data_path


def _cli(folder, spec_path, data_path, capsys, *extra):
    code = main(["estimate", str(spec_path), "--data", str(data_path), "--out",
                 str(folder / "out"), "--quiet", *extra])  # stderr: the error paragraph only
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("vagg-bayes: error: "), err
    return code


@_settings(40)
@given(case=st.one_of(plausible_panels(), random_frames()), parquet=st.booleans())
def test_command_line_up_to_sampling(tmp_path_factory, capsys, monkeypatch, case, parquet):
    import vagg_bayes.analysis

    def sentinel(*args, **kwargs):
        raise ReachedSampling

    monkeypatch.setattr(vagg_bayes.analysis, "EquationModel", sentinel)
    monkeypatch.setattr(vagg_bayes.analysis, "fit_joint_pair", sentinel)
    frame, fields = case
    folder = tmp_path_factory.mktemp("cli")
    spec_path, data_path = _write_case(folder, frame, fields, parquet)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DataWarning)
        try:
            _cli(folder, spec_path, data_path, capsys)
        except ReachedSampling:
            assert "Traceback" not in capsys.readouterr().err
    assert not (folder / "out").exists()  # nothing is written before the results


@pytest.fixture
def pymc_loaded():
    """Import PyMC before Hypothesis starts.

    PyTensor raises the recursion limit on import, which Hypothesis would report as
    changed during the test.
    """
    import pymc  # noqa: F401


@pytest.mark.slow
@_settings(3)
@given(case=plausible_panels())
def test_command_line_with_real_sampling(tmp_path_factory, capsys, pymc_loaded, case):
    frame, fields = case
    folder = tmp_path_factory.mktemp("cli")
    spec_path, data_path = _write_case(folder, frame, fields, parquet=False)
    code = _cli(folder, spec_path, data_path, capsys, "--draws", "30", "--tune", "30",
                "--chains", "1")
    assert (folder / "out" / "effects.csv").is_file() == (code == 0)

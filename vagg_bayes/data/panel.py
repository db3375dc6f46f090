"""Reading a user's panel from disk and checking that it can serve the spec.

Three functions, each with one job, and one shared rule::

    read_table(path)                      CSV or Parquet file -> DataFrame (no validation)
    validate_panel(df, spec, source=...)  DataFrame -> new DataFrame with the spec's columns
    load_panel(path, spec)                read_table, then validate_panel
    repeated_units(df, spec)              whether the spec's unit effects apply to the data

Every problem is a :class:`~vagg_bayes.errors.DataError` whose one-paragraph message
names the file, the column and its role in the spec, and says how to fix it. Nothing is
dropped or imputed silently. Row numbers in messages count data rows from 1, in the
order of the table (the header is not counted).
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from vagg_bayes.data.degenerate import check_panel
from vagg_bayes.errors import DataError
from vagg_bayes.spec import Spec

__all__ = [
    "MIN_ROWS",
    "SUPPORTED_EXTENSIONS",
    "load_panel",
    "read_table",
    "repeated_units",
    "validate_panel",
]

#: ``unit_effects`` settings that identify slopes within units (from changes over time).
WITHIN_UNIT_EFFECTS = ("within", "fixed")

#: File name endings that :func:`read_table` understands, and the reader for each.
SUPPORTED_EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

#: Fewest rows :func:`validate_panel` accepts.
MIN_ROWS = 10

_SHOW_COLUMNS = 30  # columns listed in a "not in the data" message
_SHOW_ROWS = 5  # row numbers listed in a "missing values" message


# --------------------------------------------------------------------------- reading


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.csv``, ``.csv.gz`` or ``.txt`` file (comma-separated, UTF-8, header row)
        or a ``.parquet`` / ``.pq`` file. The ending is matched case-insensitively.

    Returns
    -------
    pandas.DataFrame
        The table with pandas' default column types; nothing is converted or dropped.

    Raises
    ------
    DataError
        If the file does not exist, has an unsupported ending, is empty (0 bytes or no
        data rows), or cannot be parsed (corrupt, not UTF-8, wrong delimiter).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"Data file '{path}' does not exist. Check the path (relative paths are "
            f"resolved from {Path.cwd()}) and pass an existing CSV or Parquet file."
        )
    if not path.is_file():
        raise DataError(
            f"Data file '{path}' is a directory, not a file. Pass a single CSV or Parquet file."
        )
    kind = _file_kind(path)
    if path.stat().st_size == 0:
        raise DataError(
            f"Data file '{path}' is empty (0 bytes). Write the panel to it, with a header "
            "row, or pass another file."
        )
    df = _read_csv(path) if kind == "csv" else _read_parquet(path)
    if len(df) == 0:
        raise DataError(
            f"Data file '{path}' has no data rows (columns: {_list_columns(df.columns)}). "
            "Write the panel's rows to it, or pass another file."
        )
    return df


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    # Longest ending first, so that "x.csv.gz" is not taken for a ".gz" file.
    for ending in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ending):
            return SUPPORTED_EXTENSIONS[ending]
    raise DataError(
        f"Data file '{path}' has an unsupported type ('{''.join(path.suffixes) or path.name}'). "
        f"Supported endings are: {', '.join(SUPPORTED_EXTENSIONS)}. Save the panel as CSV "
        "or Parquet (e.g. df.to_csv('panel.csv', index=False)) and pass that file."
    )


def _read_csv(path: Path) -> pd.DataFrame:
    compression = "gzip" if path.name.lower().endswith(".gz") else None
    try:
        # low_memory=False reads the file in one pass, so a column gets one type.
        df = pd.read_csv(path, compression=compression, low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"Data file '{path}' is empty (no header, no rows). Write the panel to it, "
            "with a header row, or pass another file."
        ) from None
    except UnicodeDecodeError:
        raise DataError(
            f"Data file '{path}' is not UTF-8 text (it may be GBK, Latin-1 or Excel's "
            "encoding). Save it as CSV UTF-8, e.g. pd.read_csv(path, encoding='gbk')"
            ".to_csv(path, index=False), and try again."
        ) from None
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(
            f"Data file '{path}' could not be read as CSV ({_first_line(exc)}). Check that "
            "it is a comma-separated text file with one header row and the same number of "
            "fields on every line; re-export it if it is damaged."
        ) from None
    if df.shape[1] == 1:
        header = str(df.columns[0])
        for sep, sep_name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if sep in header:
                raise DataError(
                    f"Data file '{path}' was read as a single column '{header}'; its fields "
                    f"seem to be separated by {sep_name}, not commas. Save it "
                    "comma-separated (e.g. pd.read_csv(path, sep=...).to_csv(path, "
                    "index=False)) or as Parquet."
                )
    return df


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow  # a hard dependency; imported here only for its exception class

    try:
        return pd.read_parquet(path)
    except (ValueError, OSError, EOFError, pyarrow.ArrowException) as exc:
        raise DataError(
            f"Data file '{path}' could not be read as Parquet ({_first_line(exc)}). The file "
            "may be damaged or not Parquet at all; re-export it (e.g. "
            "df.to_parquet('panel.parquet')) or save it as CSV."
        ) from None


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.rstrip(". ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- validating


def validate_panel(df: pd.DataFrame, spec: Spec, *, source: str = "data",
                   new_rows: bool = False) -> pd.DataFrame:
    """Check that a panel can serve a spec and return the columns the spec uses.

    Parameters
    ----------
    df : pandas.DataFrame
        The user's panel. It is never modified.
    spec : Spec
        The model specification whose columns and roles are checked.
    source : str, default "data"
        Name of the data in messages, usually the file name (``"panel.csv"``).
    new_rows : bool, default False
        Rows to predict for, not to fit: any number of rows, and none of the checks
        that only matter for identification (variation of the treatment, controls and
        groups).

    Returns
    -------
    pandas.DataFrame
        A new frame holding exactly ``spec.columns``, in that order, with a fresh
        ``RangeIndex``. Boolean columns become integers 0/1; the numeric roles (outcome,
        treatment, mediators) are ``int64`` or ``float64``; string or categorical
        controls and the unit, group and time columns keep their values and types.

    Raises
    ------
    DataError
        If a spec column is not in the data (or appears twice); there are fewer than
        ``MIN_ROWS`` (10) rows; a used column has missing or empty values; an outcome,
        treatment or mediator is not numeric; a numeric column holds infinite values;
        two rows share a (unit, time) pair, or, without ``time``, a unit value; the
        treatment is constant; a ``bernoulli`` outcome is not 0/1; the group column has a
        single group; ``varying_slope`` is set but the treatment is constant within every
        group; a moderator is numeric or has a single level; a control has a single
        value; a control or mediator is identical to the
        treatment; or unit effects apply (:func:`repeated_units`) with ``unit_effects``
        ``"within"`` or ``"fixed"`` and the treatment or a mediator is constant within
        every unit; or the data are degenerate
        (:func:`vagg_bayes.data.degenerate.check_panel`: a constant outcome or mediator, a
        control that re-labels the groups, ...).

    Warns
    -----
    DataWarning
        For data that can be fitted but are weak (groups of a single row beside a
        group-varying slope, a control equal to the group labels).

    Notes
    -----
    A treatment that is constant within each group (a city-level policy, say) is fine
    with varying intercepts; only a group-varying treatment slope needs variation
    within groups. With repeated units and ``unit_effects = "within"`` or ``"fixed"``
    the treatment's and each mediator's slopes are identified from changes within
    units, so they must change over time for some unit; a time-invariant treatment
    needs ``unit_effects = "random"`` (which assumes the unit effects are independent
    of it) or ``"none"``.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate_panel needs a pandas DataFrame; got {type(df).__name__}.")
    roles = _roles(spec)
    _check_columns_present(df, roles, source)
    out = df.loc[:, spec.columns].copy(deep=True).reset_index(drop=True)
    if len(out) < (1 if new_rows else MIN_ROWS):
        raise DataError(
            f"{source} has {len(out)} row{'s' if len(out) != 1 else ''}; at least {MIN_ROWS} "
            "are needed to fit a model. Use the full panel, not a sample of it."
        )
    _check_missing(out, roles, source)

    numeric_roles = ("outcome", "treatment", "mediators", "instrument")
    for col, (role, key) in roles.items():
        if role in numeric_roles:
            out[col] = _as_numeric(out[col], col, key, source)
        elif role == "controls":
            out[col] = _as_control(out[col], col, source)
        if ptypes.is_numeric_dtype(out[col].dtype):
            _check_finite(out[col], col, key, source)

    if spec.unit is not None and spec.time is not None:
        _check_unit_time(out, spec.unit, spec.time, source)
    elif spec.unit is not None:
        _check_unit_once(out, spec.unit, source)
    if spec.family == "bernoulli":
        out[spec.outcome] = _check_binary_outcome(out[spec.outcome], spec.outcome, source)
    for col in spec.moderators:
        _check_moderator(out, col, source, levels=not new_rows)
    if new_rows:
        return out
    _check_treatment(out, spec, source)
    if spec.group is not None:
        _check_groups(out, spec, source)
    for col in spec.controls:
        _check_control(out, col, spec.treatment, source)
    for col in spec.mediators:
        _check_not_treatment_copy(out, col, "[variables].mediators", spec.treatment, source)
    check_panel(out, spec, source)
    if spec.unit_effects in WITHIN_UNIT_EFFECTS and repeated_units(out, spec):
        _check_within_units(out, spec, source)
    return out


def repeated_units(df: pd.DataFrame, spec: Spec) -> bool:
    """Whether the spec's unit effects apply to these data.

    They apply when ``spec.unit`` and ``spec.time`` are both set, the frame has the unit
    column and some unit has more than one row, and ``spec.unit_effects`` is not
    ``"none"``. This is the one rule the data checks and the model builders share.

    Parameters
    ----------
    df : pandas.DataFrame
        The rows of one equation, e.g. the output of :func:`validate_panel`. A frame
        without the unit column (city-year rows aggregated from a firm panel, say) has
        no repeated units. Not modified.
    spec : Spec
        The model specification.

    Returns
    -------
    bool
    """
    if spec.unit is None or spec.time is None or spec.unit_effects == "none":
        return False
    if spec.unit not in df.columns:
        return False
    return bool(df[spec.unit].duplicated().any())


def load_panel(path: str | Path, spec: Spec) -> pd.DataFrame:
    """Read a CSV or Parquet panel and validate it against a spec.

    Equivalent to ``validate_panel(read_table(path), spec, source=Path(path).name)``.

    Parameters
    ----------
    path : str or pathlib.Path
        The data file (see :func:`read_table` for the supported types).
    spec : Spec
        The model specification.

    Returns
    -------
    pandas.DataFrame
        The validated columns of ``spec`` (see :func:`validate_panel`).

    Raises
    ------
    DataError
        If the file cannot be read or the data cannot serve the spec.
    """
    return validate_panel(read_table(path), spec, source=Path(path).name)


# --------------------------------------------------------------------------- helpers


def _roles(spec: Spec) -> dict[str, tuple[str, str]]:
    """Map each used column to (role, spec key), in ``spec.columns`` order."""
    roles: dict[str, tuple[str, str]] = {}
    entries = [
        (spec.outcome, "outcome", "[variables].outcome"),
        (spec.treatment, "treatment", "[variables].treatment"),
        *((c, "controls", "[variables].controls") for c in spec.controls),
        *((c, "mediators", "[variables].mediators") for c in spec.mediators),
        *((c, "moderators", "[variables].moderators") for c in spec.moderators),
        *((c, "instrument", "[variables].instrument") for c in spec.instrument),
        (spec.unit, "unit", "[data].unit"),
        (spec.group, "group", "[data].group"),
        (spec.time, "time", "[data].time"),
    ]
    for col, role, key in entries:
        if col is not None and col not in roles:
            roles[col] = (role, key)
    return roles


def _list_columns(columns: Sequence[Hashable] | pd.Index) -> str:
    names = [str(c) for c in columns]
    if not names:
        return "(none)"
    shown = ", ".join(names[:_SHOW_COLUMNS])
    if len(names) > _SHOW_COLUMNS:
        shown += f", … ({len(names) - _SHOW_COLUMNS} more)"
    return shown


def _closest(name: str, columns: pd.Index) -> str | None:
    names = [str(c) for c in columns]
    by_lower = {n.lower(): n for n in names}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    match = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return match[0] if match else None


def _check_columns_present(
    df: pd.DataFrame, roles: dict[str, tuple[str, str]], source: str
) -> None:
    absent = [col for col in roles if col not in df.columns]
    if absent:
        col = absent[0]
        key = roles[col][1]
        msg = (
            f"Column '{col}' named in {key} is not in {source}. "
            f"Columns are: {_list_columns(df.columns)}."
        )
        guess = _closest(col, df.columns)
        if guess is not None:
            msg += f" Did you mean '{guess}'?"
        else:
            msg += f" Fix {key} in the spec or add the column to the data."
        if len(absent) > 1:
            msg += f" Also missing: {', '.join(repr(c) for c in absent[1:])}."
        raise DataError(msg)
    for col, (_, key) in roles.items():
        if int((df.columns == col).sum()) > 1:
            raise DataError(
                f"Column '{col}' named in {key} appears more than once in {source}. "
                "Rename or drop the duplicate columns so that each name is unique."
            )


def _rows(mask: np.ndarray | pd.Series, limit: int = _SHOW_ROWS) -> str:
    positions = np.flatnonzero(np.asarray(mask)) + 1
    shown = ", ".join(str(p) for p in positions[:limit])
    return shown + (", …" if len(positions) > limit else "")


def _missing_mask(s: pd.Series) -> pd.Series:
    mask = s.isna()
    if ptypes.is_numeric_dtype(s.dtype) or ptypes.is_bool_dtype(s.dtype):
        return mask
    if isinstance(s.dtype, pd.StringDtype):  # vectorised (pandas' string type, e.g. from CSV)
        return mask | s.str.strip().eq("").fillna(False).astype(bool)
    # Object or categorical: test each distinct value once (a group column has few).
    values = s.astype(object)
    try:
        distinct = pd.unique(values.to_numpy())
    except TypeError:  # unhashable values: test every row
        distinct = None
    if distinct is None or len(distinct) > len(values) // 2:
        blank = values.map(lambda v: isinstance(v, str) and not v.strip())
        return mask | blank.astype(bool)
    blanks = [v for v in distinct if isinstance(v, str) and not v.strip()]
    return mask | values.isin(blanks) if blanks else mask


def _check_missing(df: pd.DataFrame, roles: dict[str, tuple[str, str]], source: str) -> None:
    counts = {col: _missing_mask(df[col]) for col in roles}
    bad = [col for col, mask in counts.items() if mask.any()]
    if not bad:
        return
    col = bad[0]
    mask = counts[col]
    n = int(mask.sum())
    msg = (
        f"Column '{col}' ({roles[col][1]}) in {source} has {n} missing or empty "
        f"value{'s' if n != 1 else ''} (row{'s' if n != 1 else ''} {_rows(mask)}). "
        "Drop or impute them before fitting (e.g. df.dropna(subset=[...])); vagg_bayes "
        "does not drop rows silently."
    )
    if len(bad) > 1:
        others = ", ".join(f"'{c}' ({int(counts[c].sum())})" for c in bad[1:])
        msg += f" Other columns with missing values: {others}."
    raise DataError(msg)


def _show(value: object) -> str:
    """A value as users wrote it: 'text' quoted, numbers plain (no ``np.float64(...)``)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str | bool | int | float) else f"'{value}'"


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real | np.bool_)


def _to_plain_numeric(s: pd.Series) -> pd.Series:
    """Bools to int64; nullable or Arrow numeric types to int64/float64."""
    if ptypes.is_bool_dtype(s.dtype):
        return s.astype("int64")
    if isinstance(s.dtype, np.dtype):
        return s
    if ptypes.is_integer_dtype(s.dtype):
        return s.astype("int64")
    return s.astype("float64")


def _as_numeric(s: pd.Series, col: str, key: str, source: str) -> pd.Series:
    if (ptypes.is_numeric_dtype(s.dtype) or ptypes.is_bool_dtype(s.dtype)) and not (
        ptypes.is_complex_dtype(s.dtype)
    ):
        return _to_plain_numeric(s)
    values = s.astype(object)

    def parses(value: object) -> bool:
        try:
            float(value)
        except (TypeError, ValueError):
            return False
        return isinstance(value, str)

    # The first value that is not a number at all; failing that, the first number
    # stored as text (a CSV column with one bad cell is read entirely as text).
    bad = [(pos, v) for pos, v in enumerate(values) if not _is_number(v) and not parses(v)]
    text = [(pos, v) for pos, v in enumerate(values) if not _is_number(v)]
    for pos, value in (bad or text)[:1]:
        hint = "" if bad else " (a number stored as text; convert the column with pd.to_numeric)"
        raise DataError(
            f"Column '{col}' named in {key} must be numeric, but row {pos + 1} of "
            f"{source} holds {_show(value)}{hint}. Clean or recode the column so that every "
            "value is a number (e.g. map categories to 0/1)."
        )
    return values.astype("float64")


def _as_control(s: pd.Series, col: str, source: str) -> pd.Series:
    if ptypes.is_complex_dtype(s.dtype):
        raise DataError(
            f"Control '{col}' named in [variables].controls in {source} holds complex "
            "numbers; a regressor must be real. Use its real part, its modulus or two "
            "columns (e.g. df[col].to_numpy().real), or remove it from the controls."
        )
    if ptypes.is_numeric_dtype(s.dtype) or ptypes.is_bool_dtype(s.dtype):
        return _to_plain_numeric(s)
    if s.dtype == object and all(_is_number(v) for v in s):
        return s.astype("float64")
    return s  # strings / categoricals: the design-matrix builder makes indicators


def _check_finite(s: pd.Series, col: str, key: str, source: str) -> None:
    if ptypes.is_bool_dtype(s.dtype) or ptypes.is_integer_dtype(s.dtype):
        return
    values = s.to_numpy(dtype=complex if ptypes.is_complex_dtype(s.dtype) else "float64")
    inf = np.isinf(values)  # complex numbers (as group labels, say): either part infinite
    if inf.any():
        n = int(inf.sum())
        raise DataError(
            f"Column '{col}' ({key}) in {source} has {n} infinite value{'s' if n != 1 else ''} "
            f"(row{'s' if n != 1 else ''} {_rows(inf)}), often from a log of 0 or a division "
            "by 0. Replace or drop them before fitting."
        )


def _check_unit_time(df: pd.DataFrame, unit: str, time: str, source: str) -> None:
    dup = df.duplicated(subset=[unit, time], keep=False)
    if dup.any():
        n = int(dup.sum())
        first = int(np.flatnonzero(dup.to_numpy())[0])
        u, t = df[unit].iloc[first], df[time].iloc[first]
        times = int(((df[unit] == u) & (df[time] == t)).sum())
        raise DataError(
            f"{source} has {n} rows that share a ({unit}, {time}) pair with another row; "
            f"e.g. {unit} = {_show(u)}, {time} = {_show(t)} appears {times} times (first at row "
            f"{first + 1}). Each unit may appear once per period ([data].unit and "
            "[data].time): drop or aggregate the duplicate rows, or fix [data].unit / "
            "[data].time."
        )


def _check_unit_once(df: pd.DataFrame, unit: str, source: str) -> None:
    dup = df.duplicated(subset=[unit], keep=False)
    if dup.any():
        n = int(dup.sum())
        first = int(np.flatnonzero(dup.to_numpy())[0])
        u = df[unit].iloc[first]
        times = int((df[unit] == u).sum())
        raise DataError(
            f"{source} has {n} rows that share a {unit} value with another row; e.g. "
            f"{unit} = {_show(u)} appears {times} times (first at row {first + 1}). Without "
            "[data].time each unit ([data].unit) may appear once, or its rows would be "
            "counted as independent observations: set [data].time to the period column if "
            "the data are a panel, or aggregate to one row per unit (or fix [data].unit)."
        )


def _check_within_units(df: pd.DataFrame, spec: Spec, source: str) -> None:
    """With slopes identified within units, the treatment and mediators must vary in them."""
    unit, time = str(spec.unit), str(spec.time)
    keys = [spec.group, unit] if spec.group else [unit]  # units are nested in groups
    setting = f'[model].unit_effects = "{spec.unit_effects}"'
    for col, role in ((spec.treatment, "treatment"), *((m, "mediator") for m in spec.mediators)):
        within = df.groupby(keys, sort=False, observed=True)[col].nunique()
        if int(within.max()) >= 2:
            continue
        what = (
            "its effect is not identified within units"
            if role == "treatment"
            else "its effect on the outcome is not identified within units"
        )
        raise DataError(
            f"{role.capitalize()} '{col}' in {source} is constant within every unit of "
            f"'{unit}' (no unit's value changes over '{time}'), so {what} ({setting}: unit "
            f"effects absorb everything that does not change within a unit). Use a "
            f"time-varying measure of the {role}, or set [model] unit_effects = \"random\" "
            f"(assumes the unit effects are independent of the {role}) or \"none\"."
        )


def _check_treatment(df: pd.DataFrame, spec: Spec, source: str) -> None:
    values = df[spec.treatment]
    if values.nunique() < 2:
        raise DataError(
            f"Treatment column '{spec.treatment}' in {source} has a single value "
            f"({_show(values.iloc[0])}) in every row, so its effect is not identified. Use a "
            "treatment that varies across rows, or check that the data were not filtered "
            "to one treatment level."
        )


def _check_binary_outcome(s: pd.Series, col: str, source: str) -> pd.Series:
    distinct = pd.unique(s.to_numpy())
    bad = [v for v in distinct if v not in (0, 1)]
    if bad:
        shown = ", ".join(_show(v) for v in sorted(bad)[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DataError(
            f"Outcome column '{col}' in {source} must be 0/1 for family = \"bernoulli\", but "
            f"it also holds {shown}{more}. Recode the outcome to 0/1 (or true/false), or set "
            "[model].family = \"gaussian\" for a continuous outcome."
        )
    return s.astype("int64")


def _check_groups(df: pd.DataFrame, spec: Spec, source: str) -> None:
    group = str(spec.group)
    groups = df[group]
    if groups.nunique() < 2:
        raise DataError(
            f"Column '{group}' named in [data].group has a single group ({_show(groups.iloc[0])}) "
            f"in {source}; partial pooling needs at least 2 groups. Remove [data].group from "
            "the spec, or use a grouping column with several groups."
        )
    if spec.varying_slope:
        within = df.groupby(group, sort=False, observed=True)[spec.treatment].nunique()
        if int(within.max()) < 2:
            raise DataError(
                f"Treatment '{spec.treatment}' in {source} is constant within every group of "
                f"'{group}', so a group-varying treatment slope ([model].varying_slope = true) "
                "is not identified. Set varying_slope = false; varying intercepts work with "
                "a group-level treatment."
            )
    if spec.varying_mediator is not None:
        m = spec.varying_mediator
        within = df.groupby(group, sort=False, observed=True)[m].nunique()
        if int(within.max()) < 2:
            raise DataError(
                f"Mediator '{m}' in {source} is constant within every group of '{group}', so "
                f"its effect on the outcome cannot vary by group ([model].varying_mediator = "
                f"\"{m}\"). Remove varying_mediator from the spec."
            )


def _check_moderator(df: pd.DataFrame, col: str, source: str, *, levels: bool = True) -> None:
    """Check that a moderator is categorical (text or categories) with 2 or more levels."""
    s = df[col]
    if ptypes.is_numeric_dtype(s.dtype) or ptypes.is_bool_dtype(s.dtype) or (
            s.dtype == object and all(_is_number(v) for v in s)):
        shown = ", ".join(_show(v) for v in pd.unique(s.to_numpy())[:4])
        raise DataError(
            f"Moderator '{col}' named in [variables].moderators must be categorical (text "
            f"labels, one per level), but {source} holds numbers in it ({shown}, ...). If "
            "the numbers are codes of categories, store them as text (e.g. df[col] = "
            "'level_' + df[col].astype(str)); a numeric variable cannot be a moderator: cut "
            "it into named bands first, or remove it from [variables].moderators."
        )
    if levels and s.nunique() < 2:
        raise DataError(
            f"Moderator '{col}' named in [variables].moderators has a single level "
            f"({_show(s.iloc[0])}) in every row of {source}, so there is no other level to "
            "compare its effect with. Remove it from [variables].moderators, or use data "
            "that contain at least two of its levels."
        )


def _check_control(df: pd.DataFrame, col: str, treatment: str, source: str) -> None:
    s = df[col]
    if s.nunique() < 2:
        numeric = ptypes.is_numeric_dtype(s.dtype)
        kind = "has a single value" if numeric else "has a single category"
        raise DataError(
            f"Control '{col}' named in [variables].controls {kind} ({_show(s.iloc[0])}) in every "
            f"row of {source}, so it carries no information and its coefficient is not "
            "identified. Remove it from [variables].controls."
        )
    _check_not_treatment_copy(df, col, "[variables].controls", treatment, source)


def _check_not_treatment_copy(
    df: pd.DataFrame, col: str, key: str, treatment: str, source: str
) -> None:
    s, t = df[col], df[treatment]
    if not ptypes.is_numeric_dtype(s.dtype):
        return
    if np.array_equal(s.to_numpy(dtype="float64"), t.to_numpy(dtype="float64")):
        raise DataError(
            f"Column '{col}' named in {key} is identical to the treatment '{treatment}' in "
            f"{source}, so the treatment effect is not identified. Remove '{col}' from {key}."
        )

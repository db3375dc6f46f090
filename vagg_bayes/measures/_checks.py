"""Input checks shared by the measures: every bad input is a one-paragraph ``DataError``.

Each message names the function, the column and the argument that passed it, says what
is wrong (with a count and the first offending row, counted from 1 in the order of the
table) and how to fix it.

May import: numpy, pandas, vagg_bayes.errors.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from vagg_bayes.errors import DataError


def _show(values: Iterable, limit: int = 12) -> str:
    values = [str(v) for v in values]
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def require_frame(df: object, func: str) -> pd.DataFrame:
    """``df`` must be a non-empty DataFrame."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"{func} needs a pandas DataFrame with one row per record; got "
            f"{type(df).__name__}. Read the file with vagg_bayes.read_table (CSV or "
            "Parquet) or build a DataFrame first."
        )
    if len(df) == 0:
        raise DataError(
            f"{func} got a DataFrame with no rows (columns: {_show(df.columns)}). Pass the "
            "records to measure."
        )
    return df


def require_columns(df: pd.DataFrame, roles: dict[str, Hashable], func: str) -> None:
    """Every column named in ``roles`` (argument name -> column) must exist."""
    for role, col in roles.items():
        if not isinstance(col, Hashable) or col not in df.columns:
            raise DataError(
                f"{func}: column {col!r} (passed as {role}=) is not in the data; its "
                f"columns are {_show(df.columns)}. Pass as {role}= the name of a column "
                "of the data (names are case-sensitive)."
            )


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def key_column(df: pd.DataFrame, col: Hashable, role: str, func: str) -> None:
    """Check that a key column (firm, industry, region, ...) has no missing values."""
    missing = df[col].isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{func}: column {col!r} ({role}=) has {int(missing.sum())} missing values "
            f"(first at row {_first_row(missing)}). Every record needs its {role}: fill "
            "the missing values or drop those rows."
        )


def numeric_column(
    df: pd.DataFrame,
    col: Hashable,
    role: str,
    func: str,
    *,
    nonnegative: bool = False,
    integer: bool = False,
    fix: str = "",
) -> np.ndarray:
    """Return ``df[col]`` as float64 after checking it is numeric, complete and finite.

    ``nonnegative`` rejects values below 0; ``integer`` values with a fractional part.
    """
    s = df[col]
    if ptypes.is_bool_dtype(s) or not ptypes.is_numeric_dtype(s):
        values = pd.to_numeric(s, errors="coerce")
        bad = (values.isna() & s.notna()).to_numpy()
        example = f" such as {s[bad].iloc[0]!r} (row {_first_row(bad)})" if bad.any() else ""
        raise DataError(
            f"{func}: column {col!r} ({role}=) must be numeric but holds values of type "
            f"{s.dtype}{example}. Convert it to numbers (strip units, thousands separators "
            "and text) before measuring."
        )
    x = s.to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(x)
    if missing.any():
        raise DataError(
            f"{func}: column {col!r} ({role}=) has {int(missing.sum())} missing values "
            f"(first at row {_first_row(missing)}). Drop those rows (a firm-year without a "
            "record is treated as not observed) or fill them with the true values"
            f"{fix}."
        )
    inf = np.isinf(x)
    if inf.any():
        raise DataError(
            f"{func}: column {col!r} ({role}=) has {int(inf.sum())} infinite values "
            f"(first at row {_first_row(inf)}). Replace them with finite numbers or drop "
            "those rows."
        )
    if nonnegative and (x < 0).any():
        neg = x < 0
        raise DataError(
            f"{func}: column {col!r} ({role}=) has {int(neg.sum())} negative values "
            f"(first at row {_first_row(neg)}: {x[neg][0]!r}). Values must be >= 0 (0 means "
            "none that year); correct or drop the negative rows (returns and corrections "
            "recorded as negative values are not exports)."
        )
    if integer and (x != np.round(x)).any():
        frac = x != np.round(x)
        raise DataError(
            f"{func}: column {col!r} ({role}=) must hold whole years; row "
            f"{_first_row(frac)} holds {x[frac][0]!r}. Pass a column of calendar years "
            "(e.g. 2009)."
        )
    return x


def no_duplicates(df: pd.DataFrame, keys: Sequence[Hashable], func: str, fix: str) -> None:
    """No two rows may share the values of ``keys``."""
    dup = df.duplicated(subset=list(keys), keep=False).to_numpy()
    if dup.any():
        first = df.loc[dup, list(keys)].iloc[0].to_dict()
        raise DataError(
            f"{func}: {int(dup.sum())} rows share their {' and '.join(map(repr, keys))} "
            f"with another row (duplicate {', '.join(map(str, keys))}), e.g. {first}. "
            f"{fix}"
        )


def column_list(value: object, role: str, func: str) -> list[Hashable]:
    """Turn a column name or a sequence of them into a list (a string is one name)."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        return [value]  # type: ignore[list-item]
    out = list(value)
    if len(set(out)) != len(out):
        raise DataError(
            f"{func}: {role}= names a column more than once ({_show(out)}). Name each "
            "column once."
        )
    return out

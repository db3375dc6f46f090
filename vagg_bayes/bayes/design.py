"""Design matrices: the validated panel turned into the arrays a model needs.

Columns are named after the user's data (``floor``, ``educ[some college]``,
``year[2012]``), so every coefficient can be reported under its data name. Numeric
columns are standardised internally (``z = (x - mean) / sd``) for good sampler
geometry; :attr:`Design.transform` maps standardised coefficients back to the data
scale (``beta = transform @ theta``).

May import: numpy, pandas, vagg_bayes.spec, vagg_bayes.errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.errors import DataError
from vagg_bayes.spec import Spec

INTERCEPT = "Intercept"


@dataclass(frozen=True, eq=False)
class Design:
    """Arrays for one regression equation.

    Attributes
    ----------
    y : ndarray (n,)
        The response.
    X : ndarray (n, p)
        Population-level columns on the data scale; column 0 is the intercept.
    Z : ndarray (n, p)
        ``X`` with every non-intercept column standardised.
    terms : tuple of str
        Names of the ``p`` columns.
    transform : ndarray (p, p)
        ``X @ transform == Z``; coefficients map back as ``beta = transform @ theta``.
    treatment_index : int or None
        Column of the treatment in ``X`` (None when the equation has no treatment).
    group_codes : ndarray (n,) of int or None
        Group index of every row, 0..J-1.
    group_labels : ndarray (J,) or None
        Group labels in code order.
    varying : tuple of int
        Columns of ``X`` whose coefficients vary by group (the intercept, and the
        treatment for a varying slope); empty without a group.
    x_mean, x_sd : ndarray (p,)
        Means and SDs used to standardise (intercept: 0 and 1).
    """

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    terms: tuple[str, ...]
    transform: np.ndarray
    treatment_index: int | None
    group_codes: np.ndarray | None
    group_labels: np.ndarray | None
    varying: tuple[int, ...]
    x_mean: np.ndarray
    x_sd: np.ndarray

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.y.shape[0])

    @property
    def p(self) -> int:
        """Number of population-level columns."""
        return int(self.X.shape[1])

    @property
    def n_groups(self) -> int:
        """Number of groups (0 without a group)."""
        return 0 if self.group_labels is None else int(len(self.group_labels))

    @property
    def varying_transform(self) -> np.ndarray:
        """Map of standardised group effects to the data scale (``q x q``)."""
        idx = np.asarray(self.varying)
        return self.transform[np.ix_(idx, idx)]


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def _indicators(series: pd.Series, name: str) -> tuple[np.ndarray, list[str]]:
    """Treatment-coded indicator columns (first level in sorted order is the reference)."""
    values = series.astype(str).to_numpy()
    levels = sorted(set(values))
    cols = [(values == lev).astype(float) for lev in levels[1:]]
    names = [f"{name}[{lev}]" for lev in levels[1:]]
    return (np.column_stack(cols) if cols else np.empty((len(values), 0))), names


def build_design(
    df: pd.DataFrame,
    spec: Spec,
    *,
    response: str | None = None,
    regressors: list[str] | None = None,
    varying_slope: bool | None = None,
    varying_column: str | None = None,
) -> Design:
    """Build the design of one equation.

    Parameters
    ----------
    df : DataFrame
        A validated panel (see :func:`vagg_bayes.data.validate_panel`); not modified.
    spec : Spec
        Supplies the treatment, controls, group and time columns.
    response : str, optional
        Response column; default ``spec.outcome``.
    regressors : list of str, optional
        Numeric or categorical regressors placed after the intercept; default
        ``[spec.treatment, *spec.controls]``. Time effects (``spec.time``) are added
        as indicators after them.
    varying_slope : bool, optional
        Whether the treatment's coefficient varies by group; default ``spec.varying_slope``.
    varying_column : str, optional
        A numeric regressor whose coefficient varies by group instead of the
        treatment's (one varying slope per equation); overrides ``varying_slope``.

    Returns
    -------
    Design
    """
    response = response or spec.outcome
    regressors = list(regressors) if regressors is not None else [spec.treatment, *spec.controls]
    varying_slope = spec.varying_slope if varying_slope is None else varying_slope
    n = len(df)
    cols: list[np.ndarray] = [np.ones(n)]
    terms: list[str] = [INTERCEPT]
    for name in regressors:
        s = df[name]
        if _is_categorical(s):
            block, names = _indicators(s, name)
            cols.extend(block.T)
            terms.extend(names)
        else:
            cols.append(s.to_numpy(dtype=float))
            terms.append(name)
    if spec.time:
        block, names = _indicators(df[spec.time], spec.time)
        cols.extend(block.T)
        terms.extend(names)
    X = np.column_stack(cols)
    mean = X.mean(axis=0)
    sd = X.std(axis=0)
    mean[0], sd[0] = 0.0, 1.0
    constant = [terms[k] for k in range(1, len(terms)) if sd[k] == 0]
    if constant:
        raise DataError(
            f"Column(s) {', '.join(constant)} are constant in the rows used; a constant "
            "regressor is not identified beside the intercept. Remove it from the spec."
        )
    rank = np.linalg.matrix_rank((X - mean) / sd)
    if rank < X.shape[1]:
        raise DataError(
            f"The regressors {', '.join(terms[1:])} are collinear (rank {rank} of {X.shape[1]}): "
            "one is a linear combination of others (e.g. a city-level control beside "
            "indicators that determine it). Remove the redundant column from the spec."
        )
    Z = (X - mean) / sd
    # X @ T = Z  with  T = diag(1/sd) and T[0, k] = -mean_k / sd_k.
    T = np.diag(1.0 / sd)
    T[0, 1:] = -mean[1:] / sd[1:]
    treatment_index = terms.index(spec.treatment) if spec.treatment in terms else None

    codes = labels = None
    varying: tuple[int, ...] = ()
    if spec.group:
        codes_, uniques = pd.factorize(df[spec.group], sort=True)
        codes, labels = codes_.astype(np.int64), np.asarray(uniques)
        varying = (0,)
        if varying_column is not None:
            if varying_column not in terms:
                raise DataError(
                    f"Column '{varying_column}' cannot have a group-varying slope: it is not "
                    "a numeric regressor of this equation. Name a numeric column."
                )
            varying = (0, terms.index(varying_column))
        elif varying_slope and treatment_index is not None:
            varying = (0, treatment_index)
    y = df[response].to_numpy(dtype=float)
    return Design(
        y=y,
        X=X,
        Z=Z,
        terms=tuple(terms),
        transform=T,
        treatment_index=treatment_index,
        group_codes=codes,
        group_labels=labels,
        varying=varying,
        x_mean=mean,
        x_sd=sd,
    )

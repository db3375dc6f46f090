"""Design matrices: the validated panel turned into the arrays a model needs.

Columns are named after the user's data (``floor``, ``educ[some college]``,
``year[2012]``), so every coefficient can be reported under its data name. Numeric
columns are standardised internally (``z = (x - mean) / sd``) for good sampler
geometry; :attr:`Design.transform` maps standardised coefficients back to the data
scale (``beta = transform @ theta``).

May import: numpy, pandas, vagg_bayes.spec, vagg_bayes.errors,
vagg_bayes.data.degenerate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.data.degenerate import collinearity_message, dependent_column
from vagg_bayes.errors import DataError
from vagg_bayes.spec import Spec

INTERCEPT = "Intercept"
GROUP_MEAN = "group_mean("  # prefix of a group-mean term (``group_means``)


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
    unit_effects : {"within", "fixed", "random", "none"}
        The unit effects of this equation as resolved for these rows ("none" unless
        the rows have repeated units); see :class:`~vagg_bayes.spec.Spec`.
    unit_codes : ndarray (n,) of int or None
        Unit index of every row, 0..F-1 (units nested in groups: a unit seen in two
        groups counts as two units); None without unit effects.
    time_codes : ndarray (n,) of int or None
        Time index of every row, 0..T-1, for the group-time effects; None without them.
    time_labels : ndarray (T,) or None
    mundlak : tuple of (int, int)
        ``(column, unit-mean column)`` pairs: the unit means added for ``"within"``
        (Mundlak); the column's coefficient is the within-unit slope, the sum of the two
        the between-unit slope.
    absorbed : tuple of str
        Regressors dropped because the unit effects absorb them (``"fixed"``).
    moderation : tuple of (str, tuple of str)
        ``(moderator column, its levels)`` for every moderator of this equation; the
        first (sorted) level is the reference.
    modifiers : ndarray (n, L) or None
        Indicators of the non-reference levels of every moderator, row by row (the
        columns named by ``modifier_terms``); None without moderators.
    modifier_terms : tuple of str
        ``<moderator>[<level>]`` for the ``L`` columns of ``modifiers``.
    interactions : tuple of int
        Column of ``X`` of ``<treatment>:<moderator>[<level>]`` (the treatment times the
        indicator) for each column of ``modifiers``: row ``i``'s treatment slope is the
        treatment's coefficient plus ``modifiers[i] @ beta[interactions]``.
    group_mundlak : tuple of (int, int)
        ``(column, group-mean column)`` pairs: the group means added for
        ``group_means`` (Mundlak at the group level, ``group_mean(<term>)``); the
        column's coefficient is the within-group slope, the sum of the two the
        between-group slope.
    group_means_skipped : tuple of (str, str)
        ``(term, reason)`` for every regressor that got no group mean although
        ``group_means`` is on (constant within groups, already identified within units,
        absorbed by unit fixed effects, or its group mean adds nothing to the group-level
        columns).
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
    unit_effects: str = "none"
    unit_codes: np.ndarray | None = None
    time_codes: np.ndarray | None = None
    time_labels: np.ndarray | None = None
    mundlak: tuple[tuple[int, int], ...] = ()
    absorbed: tuple[str, ...] = ()
    moderation: tuple[tuple[str, tuple[str, ...]], ...] = ()
    modifiers: np.ndarray | None = None
    modifier_terms: tuple[str, ...] = ()
    interactions: tuple[int, ...] = ()
    group_mundlak: tuple[tuple[int, int], ...] = ()
    group_means_skipped: tuple[tuple[str, str], ...] = ()

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
    def n_units(self) -> int:
        """Number of units with their own effect (0 without unit effects)."""
        return 0 if self.unit_codes is None else int(self.unit_codes.max()) + 1

    @property
    def group_time(self) -> bool:
        """Whether the equation has a random effect per (group, time) cell."""
        return self.time_codes is not None

    @property
    def nested(self) -> bool:
        """Whether the Gaussian likelihood needs the nested collapse (unit or cell effects)."""
        return self.unit_codes is not None or self.time_codes is not None

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
    unit_effects: str | None = None,
    group_time: bool | None = None,
    reference: Design | None = None,
    source: str = "data",
    moderators: list[str] | None = None,
    group_means: bool | None = None,
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
    unit_effects : {"within", "fixed", "random", "none"}, optional
        Default ``spec.unit_effects``; applied only when the rows have repeated units
        (:func:`repeated_units`), else "none". ``"within"`` adds the unit mean of every
        regressor that varies within units (``mean(<term>)``, Mundlak); ``"fixed"``
        drops the regressors the unit effects absorb.
    group_time : bool, optional
        A random effect per (group, time) cell; default ``spec.group_time_effects``,
        and when that is None: on when the treatment is constant within cells and
        varies over time within groups (:func:`varies_by_group_time`).
    reference : Design, optional
        The design of the same equation on the first data (a refit or a prediction):
        its terms, category levels, unit means, standardisation, unit effects and
        group-time effects are kept, so the coefficients mean the same. A category level
        the reference lacks is a :class:`DataError`; a level the new rows lack gives a
        column of zeros.
    source : str, default "data"
        The data's name in messages (the file name).
    moderators : list of str, optional
        Categorical columns that moderate the treatment's effect: each one's indicators
        join the regressors (when they are not among them) and their products with the
        treatment, ``<treatment>:<moderator>[<level>]``, follow the regressors
        (:attr:`Design.interactions`). With ``reference`` the reference's moderators
        and levels are used instead.
    group_means : bool, optional
        Default ``spec.group_means`` (needs ``spec.group``). Adds the group mean of every
        regressor that varies within groups (``group_mean(<term>)``, Mundlak at the group
        level: the regressor's coefficient becomes its within-group slope), after the
        unit means. Left out, each with its reason in
        :attr:`Design.group_means_skipped`: a regressor constant within groups (its group
        mean is itself); under ``"within"`` a regressor that varies within units (its
        slope is already a within-unit one, and the unit means absorb whatever is
        constant in a group, units being nested in groups); every regressor under
        ``"fixed"`` (the unit effects absorb group means); a group mean that is a linear
        combination of the group-level columns already there, or that would leave the
        group-level columns as many as the groups. With ``reference`` the group means
        are those of the new rows' groups (as unit means are those of their units).

    Returns
    -------
    Design

    Raises
    ------
    DataError
        If a regressor is constant, or one is a linear combination of the others (the
        message names it and the columns it is built from:
        :func:`vagg_bayes.data.degenerate.collinearity_message`).
    """
    response = response or spec.outcome
    regressors = list(regressors) if regressors is not None else [spec.treatment, *spec.controls]
    varying_slope = spec.varying_slope if varying_slope is None else varying_slope
    if reference is not None:
        moderation = reference.moderation
        for col, levels in moderation:
            new = sorted(set(df[col].astype(str).to_numpy()) - set(levels))
            if new:
                raise DataError(
                    f"Moderator '{col}' has level(s) {', '.join(new)} that the first fit did "
                    f"not see (its levels: {', '.join(levels)}), so the effect there is not "
                    "estimated. Drop those rows or refit on data that contain the levels.")
    else:
        moderation = tuple((m, tuple(sorted(set(df[m].astype(str).to_numpy()))))
                           for m in (moderators or ()))
    if spec.treatment not in regressors:
        moderation = ()
    regressors += [m for m, _ in moderation if m not in regressors]
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
    modifiers, modifier_terms, products = _moderator_columns(df, spec.treatment, moderation)
    cols.extend(modifiers.T * df[spec.treatment].to_numpy(dtype=float) if products else [])
    terms.extend(products)
    if spec.time:
        block, names = _indicators(df[spec.time], spec.time)
        cols.extend(block.T)
        terms.extend(names)
    if reference is not None:
        unit_mode = reference.unit_effects
        group_time = reference.group_time
    else:
        unit_mode = resolve_unit_effects(df, spec, unit_effects)
    unit_codes = None
    mundlak: list[tuple[int, int]] = []
    absorbed: list[str] = []
    if unit_mode != "none":
        unit_codes = unit_index(df, spec)
        if reference is None:
            cols, terms, mundlak, absorbed = _unit_columns(cols, terms, unit_codes, unit_mode)
    group_pairs: list[tuple[int, int]] = []
    skipped: list[tuple[str, str]] = []
    group_means = spec.group_means if group_means is None else group_means
    if reference is None and group_means and spec.group:
        n_base = len(terms) - len(mundlak)
        cols, terms, group_pairs, skipped = _group_columns(
            cols, terms, n_base, _group_codes(df, spec), unit_codes, unit_mode)
    if reference is not None:
        design = _aligned_design(df, spec, response, reference, dict(zip(terms, cols, strict=True)),
                                 unit_codes, group_time)
        if not moderation:
            return design
        return _with_moderation(design, moderation, modifiers, modifier_terms, products)
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
    Z = (X - mean) / sd
    if dependent_column(X, Z=Z) is not None:
        group_codes = (pd.factorize(df[spec.group], sort=True)[0].astype(np.int64)
                       if spec.group else None)
        raise DataError(collinearity_message(X, terms, group_codes=group_codes,
                                             group=spec.group, equation=response,
                                             source=source, Z=Z))
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
        if unit_mode == "fixed":
            # units are nested in groups: the unit effects absorb the group intercepts
            varying = varying[1:]
    time_codes = time_labels = None
    if group_time is None:
        group_time = spec.group_time_effects
        if group_time is None:
            group_time = varies_by_group_time(df, spec, spec.treatment)
    if group_time and spec.group and spec.time:
        tc, time_labels = pd.factorize(df[spec.time], sort=True)
        time_codes, time_labels = tc.astype(np.int64), np.asarray(time_labels)
    y = df[response].to_numpy(dtype=float)
    design = Design(
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
        unit_effects=unit_mode,
        unit_codes=unit_codes,
        time_codes=time_codes,
        time_labels=time_labels,
        mundlak=tuple(mundlak),
        absorbed=tuple(absorbed),
        group_mundlak=tuple(group_pairs),
        group_means_skipped=tuple(skipped),
    )
    if not moderation:
        return design
    return _with_moderation(design, moderation, modifiers, modifier_terms, products)


def _moderator_columns(df: pd.DataFrame, treatment: str, moderation) -> tuple:
    """Build the moderators' indicator columns.

    Returns the indicators of the non-reference levels of every moderator (n, L), their
    names (``<moderator>[<level>]``) and the names of their products with the treatment.
    """
    blocks, names = [], []
    for col, levels in moderation:
        values = df[col].astype(str).to_numpy()
        for lev in levels[1:]:
            blocks.append((values == lev).astype(float))
            names.append(f"{col}[{lev}]")
    block = np.column_stack(blocks) if blocks else np.empty((len(df), 0))
    return block, tuple(names), [f"{treatment}:{name}" for name in names]


def _with_moderation(design: Design, moderation, modifiers, modifier_terms,
                     products) -> Design:
    """Record the moderators in ``design``.

    Interaction columns that unit effects absorbed are left out.
    """
    import dataclasses

    keep = [k for k, name in enumerate(products) if name in design.terms]
    return dataclasses.replace(
        design, moderation=tuple(moderation), modifiers=modifiers[:, keep],
        modifier_terms=tuple(modifier_terms[k] for k in keep),
        interactions=tuple(design.terms.index(products[k]) for k in keep))


def _aligned_design(df, spec, response, reference: Design, columns: dict, unit_codes,
                    group_time: bool) -> Design:
    """The design of new rows in the reference's terms and standardisation."""
    new_levels = [t for t in columns if t not in reference.terms and "[" in t]
    if new_levels:
        raise DataError(
            f"Indicator(s) {', '.join(new_levels)} come from category levels that the first "
            "fit did not see, so their coefficients do not exist. Drop those rows or refit "
            "the model on data that contain the levels."
        )
    n = len(df)
    cols = []
    for term in reference.terms:
        if term in columns:
            cols.append(columns[term])
        elif term.startswith("mean(") and term[5:-1] in columns and unit_codes is not None:
            cols.append(_unit_means(columns[term[5:-1]], unit_codes))
        elif (term.startswith(GROUP_MEAN) and term[len(GROUP_MEAN):-1] in columns
              and spec.group):
            cols.append(_unit_means(columns[term[len(GROUP_MEAN):-1]], _group_codes(df, spec)))
        elif "[" in term:
            cols.append(np.zeros(n))  # a level these rows do not have
        else:
            raise DataError(
                f"Term '{term}' of the first fit cannot be built from the new rows; they "
                "must have the columns the spec names."
            )
    X = np.column_stack(cols)
    Z = (X - reference.x_mean) / reference.x_sd
    codes = labels = None
    if spec.group:
        codes_, uniques = pd.factorize(df[spec.group], sort=True)
        codes, labels = codes_.astype(np.int64), np.asarray(uniques)
    time_codes = time_labels = None
    if group_time and spec.group and spec.time:
        tc, time_labels = pd.factorize(df[spec.time], sort=True)
        time_codes, time_labels = tc.astype(np.int64), np.asarray(time_labels)
    return Design(
        y=df[response].to_numpy(dtype=float) if response in df else np.full(n, np.nan),
        X=X, Z=Z, terms=reference.terms, transform=reference.transform,
        treatment_index=reference.treatment_index, group_codes=codes, group_labels=labels,
        varying=reference.varying, x_mean=reference.x_mean, x_sd=reference.x_sd,
        unit_effects=reference.unit_effects, unit_codes=unit_codes, time_codes=time_codes,
        time_labels=time_labels, mundlak=reference.mundlak, absorbed=reference.absorbed,
        group_mundlak=reference.group_mundlak,
        group_means_skipped=reference.group_means_skipped,
    )


def repeated_units(df: pd.DataFrame, spec: Spec) -> bool:
    """Whether unit effects can apply: ``unit`` and ``time`` set and a unit seen twice."""
    if not (spec.unit and spec.time) or spec.unit not in df:
        return False
    return bool(df[spec.unit].duplicated().any())


def resolve_unit_effects(df: pd.DataFrame, spec: Spec, requested: str | None = None) -> str:
    """The unit effects an equation on these rows gets ("none" without repeated units)."""
    mode = spec.unit_effects if requested is None else requested
    return mode if mode != "none" and repeated_units(df, spec) else "none"


def unit_index(df: pd.DataFrame, spec: Spec) -> np.ndarray:
    """Unit code of every row; units are nested in groups (a (group, unit) pair is a unit)."""
    keys = [spec.group, spec.unit] if spec.group else [spec.unit]
    return df.groupby(keys, sort=True, observed=True).ngroup().to_numpy(dtype=np.int64)


def varies_by_group_time(df: pd.DataFrame, spec: Spec, column: str) -> bool:
    """Whether ``column`` is a group-time measure: constant within every (group, time)
    cell, and not constant within every group (so it moves over time)."""
    if not (spec.group and spec.time) or column not in df:
        return False
    by_cell = df.groupby([spec.group, spec.time], sort=False, observed=True)[column]
    if int(by_cell.nunique(dropna=False).max()) > 1:
        return False
    by_group = df.groupby(spec.group, sort=False, observed=True)[column]
    return int(by_group.nunique(dropna=False).max()) > 1


def _unit_means(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    counts = np.bincount(codes)
    return (np.bincount(codes, weights=x, minlength=len(counts)) / counts)[codes]


def _unit_columns(cols, terms, codes, mode):
    """Add unit means (``"within"``) or drop absorbed columns (``"fixed"``).

    A column varies within units when it differs from its unit mean somewhere (up to
    rounding). Returns the new columns and terms, the (column, mean column) pairs and
    the names of the absorbed columns.
    """
    cols, terms = list(cols), list(terms)
    mundlak, absorbed = [], []
    varies = []
    for k in range(1, len(cols)):
        xbar = _unit_means(cols[k], codes)
        scale = max(float(np.abs(cols[k]).max()), 1.0)
        varies.append(float(np.abs(cols[k] - xbar).max()) > 1e-9 * scale)
        if mode == "within" and varies[-1]:
            mundlak.append((k, xbar))
    if mode == "fixed":
        keep = [0] + [k for k in range(1, len(cols)) if varies[k - 1]]
        absorbed = [terms[k] for k in range(1, len(cols)) if not varies[k - 1]]
        return [cols[k] for k in keep], [terms[k] for k in keep], [], absorbed
    pairs = []
    basis = np.ones((len(cols[0]), 1)) / np.sqrt(len(cols[0]))  # intercept, kept means
    for k, xbar in mundlak:
        # a unit mean that is constant (a balanced panel's time indicators) or that
        # duplicates a column already there adds nothing; nor does one that is a linear
        # combination of the unit means kept (event-time indicators times a unit-level
        # exposure in a balanced panel): the means' span, which is what makes the
        # slopes within-unit ones, stays the same without it
        if np.ptp(xbar) == 0:
            continue
        resid = xbar - basis @ (basis.T @ xbar)
        norm = float(np.linalg.norm(resid))
        if norm <= 1e-9 * float(np.linalg.norm(xbar - xbar.mean())):
            continue
        basis = np.column_stack([basis, resid / norm])
        cols.append(xbar)
        terms.append(f"mean({terms[k]})")
        pairs.append((k, len(cols) - 1))
    return cols, terms, pairs, absorbed


def _group_codes(df: pd.DataFrame, spec: Spec) -> np.ndarray:
    return pd.factorize(df[spec.group], sort=True)[0].astype(np.int64)


def _group_columns(cols, terms, n_base, gcodes, unit_codes, unit_mode):
    """Add the group means of the regressors (``group_means``; Mundlak at the group level).

    ``cols[1:n_base]`` are the regressors (the columns after them are unit means). A
    group mean is added for a regressor that varies within groups, unless the unit
    effects already make its slope a within-unit one (``"within"`` and it varies within
    units) or absorb every group-level column (``"fixed"``), and unless it is a linear
    combination of the group-level columns already there (the intercept, group-level
    regressors, unit means constant within groups, group means kept) or would make the
    group-level columns as many as the groups (the group intercepts would then be
    separated from them by the prior alone). Returns the new columns and terms, the
    (column, group-mean column) pairs and the ``(term, reason)`` of every regressor left
    without one.
    """
    cols, terms = list(cols), list(terms)
    n_groups = int(gcodes.max()) + 1
    first = np.unique(gcodes, return_index=True)[1]

    def constant_in(x, codes):
        xbar = _unit_means(x, codes)
        scale = max(float(np.abs(x).max()), 1.0)
        return float(np.abs(x - xbar).max()) <= 1e-9 * scale, xbar

    basis = np.ones((n_groups, 1)) / np.sqrt(n_groups)

    def add(v) -> bool:
        nonlocal basis
        resid = v - basis @ (basis.T @ v)
        norm = float(np.linalg.norm(resid))
        if norm <= 1e-9 * max(float(np.linalg.norm(v - v.mean())), 1e-300):
            return False
        basis = np.column_stack([basis, resid / norm])
        return True

    candidates = []
    for k in range(1, len(cols)):
        flat, gbar = constant_in(cols[k], gcodes)
        if flat:
            add(cols[k][first])  # a group-level column: part of the group-level span
        elif k < n_base:
            candidates.append((k, gbar))
    pairs, skipped = [], []
    for k in range(1, n_base):
        if all(k != c for c, _ in candidates):
            skipped.append((terms[k], "constant within groups: its group mean is itself"))
    for k, gbar in candidates:
        if unit_mode == "fixed":
            skipped.append((terms[k], "the unit fixed effects absorb group means"))
            continue
        if unit_mode == "within" and unit_codes is not None \
                and not constant_in(cols[k], unit_codes)[0]:
            skipped.append((terms[k], "varies within units: its slope is already a "
                                      "within-unit one (the unit means absorb group-level "
                                      "confounders)"))
            continue
        if basis.shape[1] + 1 >= n_groups:
            skipped.append((terms[k], f"the group-level columns would be as many as the "
                                      f"{n_groups} groups"))
            continue
        if not add(gbar[first]):
            skipped.append((terms[k], "its group mean is a combination of the group-level "
                                      "columns already in the equation"))
            continue
        cols.append(gbar)
        terms.append(f"{GROUP_MEAN}{terms[k]})")
        pairs.append((k, len(cols) - 1))
    skipped.sort(key=lambda item: terms.index(item[0]))
    return cols, terms, pairs, skipped

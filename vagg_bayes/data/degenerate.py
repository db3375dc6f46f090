"""Degenerate data: found before anything is compiled or sampled, each with its remedy.

A panel can pass every type check and still leave an effect unidentified: an outcome or
a mediator that never varies, a control that is the treatment again (or a linear
function of it), a control that re-labels the groups, a design whose columns are
linearly dependent. Sampling such data wastes an hour and ends in failed diagnostics
with the advice to "run longer". These checks say instead, in one paragraph, what is
degenerate and what to do::

    check_panel(df, spec, source)              the validated panel (called by validate_panel)
    check_design(design, spec, equation, ...)  one equation's design (called by
                                               vagg_bayes.equations.equation_designs)
    collinearity_message(X, terms, ...)        names the columns of a rank-deficient design
                                               (called by vagg_bayes.bayes.design)

Errors are :class:`~vagg_bayes.errors.DataError`; what can be fitted but is weak is a
:class:`~vagg_bayes.errors.DataWarning`.

The rule for group-level columns
--------------------------------
With varying intercepts the group effects ``u_j`` enter every row of group ``j`` like a
column constant within groups. A control that is constant within groups (a city-level
control) is identified beside them from the *differences between groups* that the
intercepts do not absorb: the group means of the outcome are regressed on the
group-level columns, and the intercepts' SD is estimated from what is left. Only when
the group-level columns (the intercept included), taken one row per group, have as many
independent columns as there are groups (rank = J) is nothing left: they can then
reproduce any pattern of group means, so the group effects and these columns'
coefficients are separated by the prior alone. A categorical control that re-labels
the groups (J levels, one per group) is the typical case; a numeric copy of the group
labels is a single column and stays identified (it is reported as a warning, since it
treats labels as quantities). The same rule applies to unit effects (units) and
group-time effects (cells).

May import: numpy, pandas, vagg_bayes.errors, vagg_bayes.spec.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from vagg_bayes.errors import DataError, DataWarning
from vagg_bayes.spec import Spec

__all__ = [
    "EXACT_TOL",
    "MAX_MAGNITUDE",
    "NEAR_COLLINEAR_R2",
    "RESPONSE_MEAN_TO_SD",
    "RESPONSE_SD_RANGE",
    "check_design",
    "check_panel",
    "collinearity_message",
    "dependent_column",
]

#: Relative size below which a residual counts as zero (an exact dependence up to
#: rounding): a column's residual norm on the columns before it, over its own norm.
EXACT_TOL = 1e-9

#: Largest magnitude of a number in a numeric role; its square must not overflow, and
#: a column's SD must not be below its inverse.
MAX_MAGNITUDE = 1e100

#: SDs of a Gaussian response (outcome or mediator) the samplers are verified for;
#: outside, the posterior is distorted (absolute tolerances in the whitening pre-fit).
RESPONSE_SD_RANGE = (1e-10, 1e12)

#: Largest |mean| / SD of a Gaussian response: beyond it the response varies only in
#: digits that the intercept's rounding swallows (verified to 1e6, broken at 1e7).
RESPONSE_MEAN_TO_SD = 1e6

#: Share of the treatment's variance explained by the controls above which the
#: treatment is reported as nearly collinear with them (a warning; VIF 1000).
NEAR_COLLINEAR_R2 = 0.999

_SHOW = 5  # group labels or terms listed in a message


# --------------------------------------------------------------------------- helpers


def _show(value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str | bool | int | float) else f"'{value}'"


def _listing(items: list, limit: int = _SHOW) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def _cluster_constant(x: np.ndarray, codes: np.ndarray, n_codes: int) -> bool:
    """Whether ``x`` takes one value within every cluster (up to rounding)."""
    counts = np.bincount(codes, minlength=n_codes)
    means = np.bincount(codes, weights=x, minlength=n_codes) / np.maximum(counts, 1)
    scale = max(float(np.abs(x).max()) if x.size else 0.0, 1e-300)
    return float(np.abs(x - means[codes]).max()) <= 1e-9 * scale


def _standardise(X: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit SD; a constant column becomes a column of ones."""
    X = np.asarray(X, dtype=float)
    mean = X.mean(axis=0)
    sd = X.std(axis=0)
    constant = ~(sd > 0) | ~np.isfinite(sd)
    Z = (X - mean) / np.where(constant, 1.0, sd)
    Z[:, constant] = 1.0
    return Z


#: Gram-matrix pivots below this share of a column's squared norm are checked exactly
_CANDIDATE = 1e-10


def _gram_pivots(G: np.ndarray):
    """Run a Cholesky factorisation of ``G`` column by column.

    Yields ``(k, d)``: column ``k``'s squared residual on the columns before it (up to
    rounding of order ``p * eps * G[k, k]``), for every ``k``. The caller sends back
    ``False`` to treat column ``k`` as dependent (it is then left out of the factor),
    a float to replace ``d`` by an exactly computed residual, or None to keep ``d``.
    """
    p = G.shape[0]
    L = np.zeros((p, p))
    kept: list[int] = []
    for k in range(p):
        Lk = L[k, kept]
        d = float(G[k, k] - Lk @ Lk)
        feedback = yield k, d
        if isinstance(feedback, float):
            d = feedback
        if feedback is False or d <= 0:
            continue
        L[k, k] = np.sqrt(d)
        rest = np.arange(k + 1, p)
        L[rest, k] = (G[rest, k] - L[np.ix_(rest, kept)] @ Lk) / L[k, k]
        kept.append(k)


def _exact_residual(Z: np.ndarray, k: int, columns: list[int]) -> float:
    """Relative norm of the residual of ``Z[:, k]`` on ``Z[:, columns]`` (QR, exact)."""
    target = Z[:, k]
    norm = float(np.linalg.norm(target))
    if norm == 0:
        return 0.0
    if not columns:
        return 1.0
    Q = np.linalg.qr(Z[:, columns], mode="reduced")[0]
    resid = target - Q @ (Q.T @ target)
    return float(np.linalg.norm(resid)) / norm


def dependent_column(X: np.ndarray, tol: float = EXACT_TOL, *,
                     Z: np.ndarray | None = None) -> int | None:
    """Find the first column of ``X`` that is a linear combination of the ones before it.

    The Gram matrix of the standardised columns is factorised column by column (cheap
    for millions of rows); a column whose residual on the columns before it looks
    negligible there is confirmed by an exact QR projection.

    Parameters
    ----------
    X : ndarray (n, p)
        A design on the data scale; column 0 is usually the intercept.
    tol : float, default :data:`EXACT_TOL`
        Relative residual (on the standardised columns) below which a column counts as
        dependent.
    Z : ndarray (n, p), optional
        ``X`` already standardised (a constant column as ones), to save the work.

    Returns
    -------
    int or None
        Its index, or None when the columns are linearly independent.
    """
    if X.shape[1] == 0 or X.shape[0] == 0:
        return None
    Z = _standardise(X) if Z is None else np.asarray(Z, dtype=float)
    if not np.all(np.isfinite(Z)):
        return None
    G = Z.T @ Z
    kept: list[int] = []
    walk = _gram_pivots(G)
    try:
        k, d = next(walk)
        while True:
            feedback = None
            if G[k, k] == 0 or d <= _CANDIDATE * G[k, k]:
                residual = _exact_residual(Z, k, kept)
                if residual <= tol:
                    return k
                feedback = residual**2 * float(G[k, k])  # small but real: keep it exactly
            kept.append(k)
            k, d = walk.send(feedback)
    except StopIteration:
        return None


def _combination(X: np.ndarray, terms, k: int) -> str:
    """Write ``X[:, k]`` as the combination of the columns before it (``c = 2·dose + 1``)."""
    sd = X.std(axis=0)
    coef = np.linalg.lstsq(X[:, :k], X[:, k], rcond=None)[0]
    parts = []
    constant = 0.0
    for j, b in enumerate(coef):
        if sd[j] == 0:  # the intercept (or another constant column)
            constant += b * float(X[0, j])
            continue
        if abs(b) * sd[j] > 1e-6 * max(sd[k], 1e-300):
            parts.append((b, str(terms[j])))
    text = []
    for b, name in parts[:_SHOW + 1]:
        sign = "-" if b < 0 else "+"
        mag = abs(b)
        body = name if np.isclose(mag, 1.0) else f"{mag:.4g}·{name}"
        text.append(f"{sign} {body}")
    if len(parts) > _SHOW + 1:
        text.append(f"+ … ({len(parts) - _SHOW - 1} more terms)")
    if abs(constant) > 1e-9 * (abs(float(X[:, k].mean())) + sd[k]):
        text.append(f"{'-' if constant < 0 else '+'} {abs(constant):.4g}")
    if not text:
        return f"{terms[k]} = 0"
    joined = " ".join(text)
    joined = joined[2:] if joined.startswith("+ ") else "-" + joined[2:]
    return f"{terms[k]} = {joined}"


def collinearity_message(X: np.ndarray, terms, *, group_codes: np.ndarray | None = None,
                         group: str | None = None, equation: str | None = None,
                         source: str = "data", Z: np.ndarray | None = None) -> str | None:
    """Write a one-paragraph message naming the columns of ``X`` that are dependent.

    Parameters
    ----------
    X : ndarray (n, p)
        The design on the data scale, intercept first.
    terms : sequence of str
        Column names.
    group_codes : ndarray (n,) of int, optional
        Group of every row; when the dependent columns all take one value per group the
        message says so (a control that re-labels the groups).
    group : str, optional
        Name of the group column.
    equation : str, optional
        The response of the equation (for the message).
    source : str, default "data"
        The data's name (the file name).
    Z : ndarray (n, p), optional
        ``X`` standardised (see :func:`dependent_column`).

    Returns
    -------
    str or None
        None when no column is a linear combination of the ones before it.
    """
    k = dependent_column(X, Z=Z)
    if k is None:
        return None
    relation = _combination(X, terms, k) if k > 0 else f"{terms[0]} = 0"
    where = f" of the equation of '{equation}'" if equation else ""
    msg = (
        f"The regressors{where} in {source} are collinear: {relation} in every row (up to "
        f"rounding), so the coefficient of '{terms[k]}' cannot be told apart from those of "
        "the columns it is built from."
    )
    if group_codes is not None and group is not None:
        n_groups = int(group_codes.max()) + 1 if group_codes.size else 0
        if _cluster_constant(X[:, k], group_codes, n_groups):
            msg += (
                f" '{terms[k]}' takes one value per group of '{group}', as do the columns it "
                "depends on: the group-level columns are too many for the number of groups "
                f"({n_groups}) (e.g. a categorical control that encodes '{group}' or a "
                "coarser grouping)."
            )
    name = str(terms[k])
    if name.startswith("group_mean(") and name.endswith(")"):
        msg += (
            f" '{name}' is the group mean that [model].group_means = true adds for "
            f"'{name[11:-1]}'. Remove the redundant group-level control from "
            "[variables].controls, or set group_means = false."
        )
    elif name.startswith("mean(") and name.endswith(")"):
        msg += (
            f" '{name}' is the unit mean that [model].unit_effects = \"within\" adds for "
            f"'{name[5:-1]}'. Remove the redundant control from [variables].controls, or set "
            "unit_effects = \"fixed\" or \"none\"."
        )
    else:
        base = name.split("[", 1)[0]
        msg += (
            f" Remove '{base}' (or one of the columns it depends on) from the spec; a "
            "control that measures the treatment again or re-labels another column adds "
            "nothing the model can estimate."
        )
    return msg


# --------------------------------------------------------------------------- the panel


def check_panel(df: pd.DataFrame, spec: Spec, source: str = "data") -> None:
    """Stop on degenerate columns of a validated panel; warn on weak ones.

    Parameters
    ----------
    df : pandas.DataFrame
        The output of :func:`~vagg_bayes.data.panel.validate_panel` (numeric roles are
        numbers, a Bernoulli outcome is 0/1). Not modified.
    spec : Spec
    source : str, default "data"
        The data's name in messages (the file name).

    Raises
    ------
    DataError
        If a numeric column holds a number beyond :data:`MAX_MAGNITUDE` or varies by
        less than its inverse; the outcome has a single value (for ``bernoulli``: no 0s
        or no 1s); a
        mediator has a single value; a Gaussian outcome never changes within a unit while
        unit effects apply; a categorical control re-labels the groups.

    Warns
    -----
    DataWarning
        If some groups have a single row while a slope varies by group; every group has
        a single row; a numeric control equals the group labels.
    """
    _check_magnitudes(df, spec, source)
    _check_outcome(df, spec, source)
    for m in spec.mediators:
        s = df[m]
        if s.nunique() < 2:
            raise DataError(
                f"Mediator '{m}' named in [variables].mediators has a single value "
                f"({_show(s.iloc[0])}) in every row of {source}, so neither the treatment's "
                "effect on it nor its effect on the outcome is identified (its indirect "
                f"effect would be 0/0). Remove '{m}' from [variables].mediators, or check the "
                "column (a proxy that was never filled in, or data filtered to one value)."
            )
    if spec.group is not None:
        _check_group_copies(df, spec, source)
        _check_single_row_groups(df, spec, source)


def _check_magnitudes(df: pd.DataFrame, spec: Spec, source: str) -> None:
    """Stop on numbers whose squares overflow or whose spread vanishes.

    Numbers beyond ``MAX_MAGNITUDE`` (or SDs below its inverse) overflow or vanish in the
    sums of squares that standardising and every model compute.
    """
    roles = [(spec.outcome, "[variables].outcome"), (spec.treatment, "[variables].treatment"),
             *((m, "[variables].mediators") for m in spec.mediators),
             *((c, "[variables].controls") for c in spec.controls)]
    for col, key in roles:
        s = df[col]
        if not ptypes.is_numeric_dtype(s.dtype) or ptypes.is_bool_dtype(s.dtype):
            continue
        x = s.to_numpy(dtype=float)
        big = float(np.abs(x).max()) if x.size else 0.0
        if big > MAX_MAGNITUDE:
            row = int(np.argmax(np.abs(x)))
            raise DataError(
                f"Column '{col}' ({key}) in {source} holds {x[row]:.3g} (row {row + 1}): "
                f"numbers beyond {MAX_MAGNITUDE:.0e} overflow when squared, as standardising "
                "and every likelihood do. Check the value (a unit error, a sentinel such as "
                "9e999 for missing?) and rescale the column (e.g. take logs or divide it by a "
                "power of ten)."
            )
        if big == 0:
            continue
        spread = float((x / big).std()) * big
        if 0 < spread < 1 / MAX_MAGNITUDE:
            raise DataError(
                f"Column '{col}' ({key}) in {source} varies by only {spread:.3g} (SD): so "
                "little that it vanishes in the arithmetic. Rescale the column (e.g. multiply "
                "it by a power of ten) or check whether it is meant to be constant."
            )


def _check_outcome(df: pd.DataFrame, spec: Spec, source: str) -> None:
    y = df[spec.outcome]
    if y.nunique() < 2:
        value = y.iloc[0]
        if spec.family == "bernoulli":
            raise DataError(
                f"Outcome '{spec.outcome}' in {source} is {_show(value)} in every row "
                f"(family = \"bernoulli\"): a binary outcome that never varies has no "
                f"{'1s' if value == 0 else '0s'} to compare with, so the logit's intercept "
                "runs off to infinity and no effect on the probability is identified. Check "
                "that the data were not filtered on the outcome (e.g. exporters only) and use "
                "the full sample."
            )
        raise DataError(
            f"Outcome '{spec.outcome}' in {source} has a single value ({_show(value)}) in "
            "every row, so there is no variation for the treatment or anything else to "
            "explain (the model would sample a residual SD of zero and fail its "
            "diagnostics). Check that [variables].outcome names the right column and that "
            "the data were not filtered to one outcome value."
        )
    unit_effects = (spec.unit is not None and spec.time is not None
                    and spec.unit_effects != "none" and spec.family == "gaussian")
    if not unit_effects or not bool(df[spec.unit].duplicated().any()):
        return
    keys = [spec.group, spec.unit] if spec.group else [spec.unit]
    within = df.groupby(keys, sort=False, observed=True)[spec.outcome].nunique()
    if int(within.max()) < 2:
        raise DataError(
            f"Outcome '{spec.outcome}' in {source} never changes within a unit of "
            f"'{spec.unit}' (each unit has one value over '{spec.time}'): with unit effects "
            f"([model].unit_effects = \"{spec.unit_effects}\") the unit intercepts absorb all "
            "of its variation and the residual SD would pile up at zero. A time-invariant "
            "outcome is a cross-section: aggregate to one row per unit and remove [data].time, "
            "or set [model].unit_effects = \"none\"."
        )


def _check_group_copies(df: pd.DataFrame, spec: Spec, source: str) -> None:
    group = str(spec.group)
    g = df[group]
    n_groups = int(g.nunique())
    # with fixed unit effects (units nested in groups) group-level columns are absorbed
    absorbed = (spec.unit_effects == "fixed" and spec.unit is not None
                and spec.time is not None and bool(df[spec.unit].duplicated().any()))
    for col in spec.controls:
        s = df[col]
        if ptypes.is_numeric_dtype(s.dtype):
            if ptypes.is_numeric_dtype(g.dtype) and np.array_equal(
                    s.to_numpy(dtype=float), g.to_numpy(dtype=float)):
                warnings.warn(
                    f"Control '{col}' in {source} equals the group labels of '{group}' in every "
                    "row. As a number it is a single column, identified from a linear trend "
                    f"across the {n_groups} group labels, so it treats arbitrary labels as a "
                    "quantity; the varying intercepts already are the group effects. Remove "
                    f"'{col}' from [variables].controls unless its values are a real measure.",
                    DataWarning, stacklevel=4,
                )
            continue
        if absorbed:
            continue
        pairs = pd.DataFrame({"g": g.astype(str).to_numpy(), "c": s.astype(str).to_numpy()})
        pairs = pairs.drop_duplicates()
        if (len(pairs) == n_groups and pairs["c"].nunique() == n_groups
                and not pairs["g"].duplicated().any()):
            raise DataError(
                f"Control '{col}' in {source} re-labels the groups of '{group}': each of its "
                f"{n_groups} categories belongs to exactly one group and each group to one "
                f"category, so its {n_groups - 1} indicators and the intercept reproduce the "
                "varying group intercepts exactly; neither its coefficients nor sd("
                f"{group}) would be identified (only the prior would separate them). The "
                f"varying intercepts already are the effects of '{group}': remove '{col}' from "
                "[variables].controls. (A group-level control that measures something, such "
                "as a city's population, is fine: it is one column, identified from the "
                "differences between groups.)"
            )


def _check_single_row_groups(df: pd.DataFrame, spec: Spec, source: str) -> None:
    group = str(spec.group)
    sizes = df.groupby(group, sort=True, observed=True).size()
    single = sizes[sizes == 1]
    if single.empty:
        return
    labels = _listing([_show(v) for v in single.index.tolist()])
    slope = spec.varying_mediator or (spec.treatment if spec.varying_slope else None)
    if len(single) == len(sizes):
        warnings.warn(
            f"Every group of '{group}' in {source} has a single row, so the group intercepts "
            "cannot be told apart from the residual noise: sd("
            f"{group}) and the residual SD are identified only together. Remove [data].group, "
            "or group the rows by a coarser column.",
            DataWarning, stacklevel=4,
        )
        return
    if slope is not None:
        key = ("[model].varying_mediator" if spec.varying_mediator
               else "[model].varying_slope = true")
        warnings.warn(
            f"{len(single)} of {len(sizes)} groups of '{group}' in {source} have a single row "
            f"({labels}). With a group-varying slope of '{slope}' ({key}) one row cannot tell "
            "a group's slope from its intercept, so those groups' slopes are draws from the "
            "population (partial pooling) and tell nothing about how the slope varies. Fine "
            "for a few groups; if there are many, merge or drop the small groups, or remove "
            f"{key.split(' =')[0]}.",
            DataWarning, stacklevel=4,
        )


# --------------------------------------------------------------------------- designs


def check_design(design, spec: Spec, equation: str, *, source: str = "data",
                 family: str = "gaussian") -> None:
    """Stop on a degenerate equation design; warn on a weakly identified treatment.

    Parameters
    ----------
    design : vagg_bayes.bayes.design.Design
        The design of one equation (first fit, not a reference-aligned one).
    spec : Spec
    equation : str
        The response column (named in messages).
    source : str, default "data"
        The data's name in messages.
    family : str, default "gaussian"
        The equation's likelihood; the exact-fit check applies to Gaussian ones.

    Raises
    ------
    DataError
        If the group-level (unit-level, cell-level) columns saturate the groups (units,
        cells) they vary over (see the module's rule); a Gaussian response has an SD
        outside :data:`RESPONSE_SD_RANGE` or a mean beyond :data:`RESPONSE_MEAN_TO_SD`
        SDs from zero (the samplers lose it to rounding: rescale or shift it); or a
        Gaussian response is an exact linear function of its regressors.

    Warns
    -----
    DataWarning
        If the controls explain more than :data:`NEAR_COLLINEAR_R2` of the treatment's
        variance (but not all of it).
    """
    X = design.X
    terms = list(design.terms)
    for level, codes, name in _levels(design, spec):
        _check_saturation(X, terms, codes, level, name, equation, source)
    Z = np.asarray(design.Z, dtype=float)
    if not np.all(np.isfinite(Z)):
        return
    gram = Z.T @ Z
    if family == "gaussian":
        _check_scale(design, equation, source)
        _check_exact_fit(design, Z, gram, terms, equation, source)
    _check_near_collinear(design, Z, gram, spec, terms, equation, source)


def _levels(design, spec: Spec):
    """List (what, codes, name) of each random-intercept level of the design."""
    out = []
    if design.group_codes is not None and 0 in design.varying:
        out.append(("groups", design.group_codes, str(spec.group)))
    if design.time_codes is not None and design.group_codes is not None:
        cells = pd.factorize(pd.MultiIndex.from_arrays(
            [design.group_codes, design.time_codes]))[0].astype(np.int64)
        out.append(("group-time cells", cells, f"{spec.group}:{spec.time}"))
    if design.unit_codes is not None and design.unit_effects in ("within", "random"):
        out.append(("units", design.unit_codes, str(spec.unit)))
    return out


def _check_saturation(X, terms, codes, level, name, equation, source) -> None:
    n_codes = int(codes.max()) + 1 if codes.size else 0
    if n_codes == 0 or n_codes > X.shape[1]:
        return  # more clusters than columns: the columns cannot reproduce every pattern
    const = [k for k in range(X.shape[1]) if _cluster_constant(X[:, k], codes, n_codes)]
    if len(const) < n_codes:
        return  # rank <= len(const) < number of clusters: something is left to identify
    first = np.unique(codes, return_index=True)[1]
    G = _standardise(X[np.ix_(first, const)])
    s = np.linalg.svd(G, compute_uv=False)
    rank = int((s > EXACT_TOL * max(G.shape) * (s[0] if s.size else 0)).sum())
    if rank < n_codes:
        return
    shown = _listing([terms[k] for k in const if k != 0])
    raise DataError(
        f"In the equation of '{equation}' ({source}) the columns {shown} take one value per "
        f"{level[:-1]} of '{name}'; with the intercept they are {len(const)} columns for "
        f"{n_codes} {level}, enough to reproduce any pattern of {level[:-1]} means. The "
        f"varying intercepts of '{name}' (sd({name})) and these columns' coefficients are then "
        "separated by the prior alone. A column that is constant within each of the "
        f"{level} is fine only while there are more {level} than such columns: remove the "
        f"{level[:-1]}-level controls that encode '{name}' (a categorical control with one "
        "category per group is the usual culprit), or use data with more "
        f"{level}."
    )


def _check_scale(design, equation, source) -> None:
    y = np.asarray(design.y, dtype=float)
    if y.size < 2 or not np.all(np.isfinite(y)):
        return
    mean, sd = float(y.mean()), float(y.std())
    if sd == 0:
        return
    low, high = RESPONSE_SD_RANGE
    if not low <= sd <= high:
        factor = 10.0 ** np.floor(np.log10(sd))
        raise DataError(
            f"'{equation}' in {source} has an SD of {sd:.3g}, outside the range the "
            f"samplers are verified for ({low:g} to {high:g}): its posterior would be "
            f"distorted by rounding. Rescale the column before fitting (e.g. divide it by "
            f"{factor:.0e}); every effect and coefficient of it is then in the new unit "
            f"(multiply them back by {factor:.0e})."
        )
    if abs(mean) > RESPONSE_MEAN_TO_SD * sd:
        raise DataError(
            f"'{equation}' in {source} varies only far behind its leading digits (mean "
            f"{mean:.10g}, SD {sd:.3g}: |mean| / SD > {RESPONSE_MEAN_TO_SD:g}), so the "
            "sampler would lose its variation to rounding around the intercept. Subtract a "
            f"constant before fitting (e.g. {equation} - {mean:.6g}): slopes and effects are "
            "unchanged, only the intercept moves by that constant."
        )


def _check_exact_fit(design, Z, gram, terms, equation, source) -> None:
    y = np.asarray(design.y, dtype=float)
    sd_y = float(y.std())
    if design.n <= design.p or not np.isfinite(sd_y) or sd_y == 0:
        return
    yz = (y - y.mean()) / sd_y
    # squared residual of yz on Z from the Gram matrix; confirmed exactly when tiny
    Zy = Z.T @ yz
    coef = np.linalg.lstsq(gram, Zy, rcond=None)[0]
    approx = float(yz @ yz - Zy @ coef)
    if approx > 1e-8 * design.n:
        return
    coef = np.linalg.lstsq(Z, yz, rcond=None)[0]
    if float((yz - Z @ coef).std()) > 1e-7:
        return
    raise DataError(
        f"'{equation}' in {source} is an exact linear function of its regressors "
        f"({_listing(terms[1:])}): they reproduce it in every row, so the residual SD would "
        "pile up at zero and the sampler fail. A regressor is probably the response under "
        "another name or an identity (a share and its complement, a total and its parts). "
        "Remove that column from the spec."
    )


def _check_near_collinear(design, Z, gram, spec: Spec, terms, equation, source) -> None:
    k = design.treatment_index
    if k is None or not spec.controls:
        return
    ctrl = [j for j, t in enumerate(terms)
            if any(t == c or t.startswith(f"{c}[") for c in spec.controls)]
    if not ctrl or gram[k, k] == 0:
        return
    # Z's columns are centred (all but the intercept): R^2 of the treatment on the
    # controls from the Gram matrix
    C = gram[np.ix_(ctrl, ctrl)]
    ct = gram[ctrl, k]
    coef = np.linalg.lstsq(C, ct, rcond=None)[0]
    r2 = float(ct @ coef) / float(gram[k, k])
    if not np.isfinite(r2) or r2 < NEAR_COLLINEAR_R2:
        return
    r2 = min(r2, 1.0)
    corr = sorted(((abs(float(gram[j, k])) / float(np.sqrt(gram[j, j] * gram[k, k])), terms[j])
                   for j in ctrl if gram[j, j] > 0), reverse=True)
    top = ", ".join(f"{name} (|corr| {r:.4f})" for r, name in corr[:3])
    warnings.warn(
        f"In the equation of '{equation}' ({source}) the controls explain {100 * r2:.3f}% of "
        f"the variance of the treatment '{spec.treatment}' (most correlated: {top}). Its "
        f"effect is identified only by the remaining {100 * (1 - r2):.2g}%, so its interval "
        "will be wide and sensitive to the priors. If a control measures the treatment "
        "again (another unit, a lag, a rescaling), remove it from [variables].controls.",
        DataWarning, stacklevel=4,
    )

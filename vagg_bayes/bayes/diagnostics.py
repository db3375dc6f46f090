"""Convergence diagnostics of a posterior: divergences, r_hat, ESS; loud when they fail.

Thresholds follow DESIGN.md: no divergences, r_hat <= 1.01, ess_bulk and ess_tail
>= 400 (Vehtari et al. 2021). Draws that are NaN or infinite fail by name (they are left
out of r_hat and ESS, which they would only turn into NaN). A scale parameter whose
posterior piles up at its lower bound 0 (a group SD near zero), or a correlation piling
up at -1 or +1, is a *note*: said with its meaning and remedy, but not a failure
(:func:`boundary_notes`).

May import: numpy, xarray, arviz.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

R_HAT_MAX = 1.01
ESS_MIN = 400


class ConvergenceWarning(UserWarning):
    """The sampler's diagnostics fail; the estimates should not be reported as they are."""


class FallbackWarning(UserWarning):
    """A numerical step failed and a fallback took its place, which changes the result.

    The message says what failed, what was used instead and how to avoid it.
    """


@dataclass(frozen=True)
class Diagnostics:
    """Summary of the sampler's health.

    Attributes
    ----------
    divergences : int
    max_r_hat, min_ess_bulk, min_ess_tail : float
    worst : dict
        The parameter behind each extreme (``{"r_hat": name, "ess_bulk": name, ...}``).
    problems : list of str
        One sentence per failed check, each with a remedy; empty when all pass.
    notes : tuple of str
        What is worth knowing but is not a failure (a posterior piled up at a prior's
        boundary), each with its meaning and remedy.
    """

    divergences: int
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    worst: dict = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Whether every check passes."""
        return not self.problems

    def to_dict(self) -> dict:
        """Plain-JSON form for ``diagnostics.json``."""
        return {
            "passed": self.passed,
            "divergences": self.divergences,
            "max_r_hat": self.max_r_hat,
            "min_ess_bulk": self.min_ess_bulk,
            "min_ess_tail": self.min_ess_tail,
            "worst": self.worst,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "thresholds": {"r_hat_max": R_HAT_MAX, "ess_min": ESS_MIN, "divergences": 0},
        }


def _flatten(ds) -> dict[str, np.ndarray]:
    """Every scalar component of every variable: name -> (chain, draw) array."""
    out = {}
    for name, da in ds.data_vars.items():
        arr = np.asarray(da)
        if arr.ndim == 2:
            out[name] = arr
            continue
        flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
        labels = [
            ",".join(str(c) for c in idx) for idx in np.ndindex(*arr.shape[2:])
        ]
        coord_names = [d for d in da.dims[2:]]
        if len(coord_names) == 1 and coord_names[0] in da.coords:
            labels = [str(v) for v in da.coords[coord_names[0]].values]
        for k, lab in enumerate(labels):
            out[f"{name}[{lab}]"] = flat[:, :, k]
    return out


def _rhat_ess(draws: dict[str, np.ndarray]) -> tuple[dict, dict, dict]:
    """``r_hat``, bulk and tail ESS of every named (chain, draw) array that is not constant.

    The arrays of one shape are stacked along a dimension ``parameter`` of one
    ``xarray`` variable, so each statistic is one ArviZ call per shape (one in
    practice). A 1-d array is one chain, as ArviZ reads it.
    """
    import arviz as az
    import xarray as xr

    by_shape: dict[tuple, list[str]] = {}
    arrays = {}
    for name, arr in draws.items():
        arr = np.asarray(arr)
        if np.ptp(arr) == 0:
            continue
        arrays[name] = arr[None] if arr.ndim == 1 else arr
        by_shape.setdefault(arrays[name].shape, []).append(name)
    r_hat, bulk, tail = {}, {}, {}
    for names in by_shape.values():
        stacked = np.stack([arrays[n] for n in names], axis=-1)
        ds = xr.Dataset({"x": (("chain", "draw", "parameter"), stacked)})
        for out, stat in ((r_hat, az.rhat(ds)), (bulk, az.ess(ds, method="bulk")),
                          (tail, az.ess(ds, method="tail"))):
            out.update(zip(names, np.asarray(stat["x"], dtype=float).tolist(), strict=True))
    order = [n for n in draws if n in arrays]  # the callers' order (ties: the first wins)
    return ({n: r_hat[n] for n in order}, {n: bulk[n] for n in order},
            {n: tail[n] for n in order})


def _non_finite(draws: dict[str, np.ndarray]) -> dict[str, tuple[int, int]]:
    """Name -> (number of NaN or infinite draws, number of draws), for those that have any."""
    out = {}
    for name, arr in draws.items():
        arr = np.asarray(arr, dtype=float)
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if bad:
            out[name] = (bad, int(np.size(arr)))
    return out


def check_draws(draws: dict[str, np.ndarray], divergences: int) -> Diagnostics:
    """Diagnose named (chain, draw) arrays (constant ones are skipped).

    Arrays holding NaN or infinite draws fail by name and are left out of r_hat and ESS.
    """
    broken = _non_finite(draws)
    r_hat, bulk, tail = _rhat_ess({n: a for n, a in draws.items() if n not in broken})
    worst_r = max(r_hat, key=r_hat.get) if r_hat else ""
    worst_b = min(bulk, key=bulk.get) if bulk else ""
    worst_t = min(tail, key=tail.get) if tail else ""
    max_r = r_hat.get(worst_r, float("nan"))
    min_b = bulk.get(worst_b, float("nan"))
    min_t = tail.get(worst_t, float("nan"))
    problems = []
    if broken:
        name, (bad, total) = next(iter(broken.items()))
        others = (f" ({len(broken) - 1} more parameters too: "
                  f"{', '.join(list(broken)[1:4])}{', …' if len(broken) > 4 else ''})"
                  if len(broken) > 1 else "")
        problems.append(
            f"{bad} of {total} draws of {name} are NaN or infinite{others}: the computation "
            "overflowed or divided by zero, so every summary of it is meaningless. Remedy: "
            "look for extreme values in the data and rescale the outcome and regressors to "
            "moderate units (thousands, not units, of yuan), then rerun; if it persists, "
            "report it with the data's shape."
        )
    if divergences:
        problems.append(
            f"{divergences} divergent transitions: the sampler met curvature it could not "
            "follow, so the posterior may be biased. Remedy: raise target_accept (e.g. 0.95-0.99), "
            "or use a parameterisation suited to the data (group sizes), or tighter priors."
        )
    one_chain = bool(draws) and all(np.ndim(a) < 2 or np.shape(a)[0] == 1
                                    for a in draws.values())
    if r_hat and one_chain:
        problems.append(
            "r_hat cannot be computed from a single chain, so convergence is not checked. "
            "Remedy: run at least 2 chains (--chains 4)."
        )
    elif r_hat and (not np.isfinite(max_r) or max_r > R_HAT_MAX):
        problems.append(
            f"r_hat of {worst_r} is {max_r:.3f} (> {R_HAT_MAX}): the chains disagree. "
            "Remedy: run longer (--tune 2000 --draws 2000) and more chains (--chains 4)."
        )
    if bulk and min(min_b, min_t) < ESS_MIN:
        which, val, kind = ((worst_b, min_b, "bulk") if min_b <= min_t
                            else (worst_t, min_t, "tail"))
        problems.append(
            f"effective sample size ({kind}) of {which} is {val:.0f} (< {ESS_MIN}): intervals are "
            "unreliable. Remedy: more draws (--draws 2000) or chains (--chains 4)."
        )
    return Diagnostics(
        divergences=int(divergences),
        max_r_hat=max_r,
        min_ess_bulk=min_b,
        min_ess_tail=min_t,
        worst={"r_hat": worst_r, "ess_bulk": worst_b, "ess_tail": worst_t},
        problems=tuple(problems),
    )


def _piles_at_bound(x: np.ndarray) -> bool:
    """Whether draws of a quantity bounded below by 0 pile up at 0.

    Compares the density of draws next to the bound, on ``[0, m/4]`` with ``m`` the
    median, with the density around the median, on ``[m/2, 3m/2]``: piled up when the
    first is at least 1.1 times the second (a half-normal shape gives 1.3, an
    exponential 1.8; a log-normal with SD 1 on the log scale 0.8, a uniform 1, a
    posterior clear of 0 about 0).
    """
    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size < 40 or float(np.ptp(x)) == 0:
        return False
    m = float(np.median(x))
    if not m > 0:
        return bool(np.mean(x <= 0) >= 0.5)
    near = np.count_nonzero(x <= m / 4) / (m / 4)
    middle = np.count_nonzero((x >= m / 2) & (x <= 1.5 * m)) / m
    return bool(middle > 0 and near >= 1.1 * middle)


def boundary_notes(draws: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Say which posteriors pile up on a prior's boundary, and what that means.

    Parameters
    ----------
    draws : dict of str -> ndarray
        Named draws. Names containing ``sd(`` (group, unit, cell SDs) or ending in
        ``sigma`` are scales bounded below by 0; names containing ``corr`` are
        correlations bounded by -1 and +1. Other names are ignored.

    Returns
    -------
    tuple of str
        One note per parameter whose density is highest at its bound, saying what that
        means and what to do. Not failures: a group SD near zero is a finding (little
        variation between groups), not a broken sampler.
    """
    notes = []
    for name, arr in draws.items():
        x = np.asarray(arr, dtype=float)
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            continue
        if "sd(" in name or name.endswith("sigma"):
            if not _piles_at_bound(x):
                continue
            median, high = np.quantile(finite, [0.5, 0.97])
            what = ("the rows vary little around the regression line" if name.endswith("sigma")
                    else "the data show little variation of this effect between the groups "
                    "(or units, or cells), so partial pooling shrinks them almost to one value")
            notes.append(
                f"The posterior of {name} piles up at its lower bound 0 (median {median:.3g}, "
                f"97% quantile {high:.3g}): {what}. Not an error, and the other estimates "
                "stand; report it as an upper bound (no evidence of variation), not as an "
                "estimate. If the sampler also diverges, remove that varying effect "
                "(e.g. [model].varying_slope = false) or use a tighter prior."
            )
        elif "corr" in name:
            for sign, bounded in (("+1", 1.0 - x), ("-1", 1.0 + x)):
                if _piles_at_bound(bounded):
                    notes.append(
                        f"The posterior of {name} piles up at {sign} (median "
                        f"{float(np.median(finite)):.3g}): the varying effects it links are "
                        "nearly perfectly correlated, usually because a varying slope is "
                        "weakly identified (little within-group variation of its regressor) "
                        "and its prior (LKJ) is all that bounds it. The averages stand; do "
                        "not interpret the correlation, and consider removing the varying "
                        "slope."
                    )
    return tuple(notes)


def diagnose(idata, var_names: list[str]) -> Diagnostics:
    """Diagnose the sampled parameters ``var_names`` of an InferenceData."""
    div = 0
    if hasattr(idata, "sample_stats") and "diverging" in idata.sample_stats:
        div = int(np.asarray(idata.sample_stats["diverging"]).sum())
    names = [v for v in var_names if v in idata.posterior]
    return check_draws(_flatten(idata.posterior[names]), div)


def warn_if_failed(diag: Diagnostics, what: str = "The posterior") -> None:
    """Emit a :class:`ConvergenceWarning` listing every failed check with its remedy."""
    if not diag.passed:
        text = " ".join(diag.problems)
        warnings.warn(
            f"{what} FAILS its diagnostics; do not report it as it is. {text}",
            ConvergenceWarning,
            stacklevel=2,
        )


def combine_diagnostics(parts: list[Diagnostics]) -> Diagnostics:
    """The worst of several equations' diagnostics, with all their problems."""
    if len(parts) == 1:
        return parts[0]
    r = max(parts, key=lambda d: d.max_r_hat)
    b = min(parts, key=lambda d: d.min_ess_bulk)
    t = min(parts, key=lambda d: d.min_ess_tail)
    return Diagnostics(
        divergences=sum(d.divergences for d in parts),
        max_r_hat=r.max_r_hat,
        min_ess_bulk=b.min_ess_bulk,
        min_ess_tail=t.min_ess_tail,
        worst={"r_hat": r.worst["r_hat"], "ess_bulk": b.worst["ess_bulk"],
               "ess_tail": t.worst["ess_tail"]},
        problems=tuple(p for d in parts for p in d.problems),
        notes=tuple(dict.fromkeys(n for d in parts for n in d.notes)),
    )

"""Total, direct and path-specific indirect effects from fitted equations, one value per draw.

The outcome equation and one equation per (parallel) mediator have been fitted
separately; their posteriors factorise, so draw ``(chain, draw)`` of every equation
together form one joint draw. From them, per draw:

- Gaussian outcome (MATH.md section 2): ``direct = c``, ``indirect:<m> = a_m b_m``,
  ``indirect = sum_m a_m b_m``, ``total = direct + indirect``; ``c`` and ``a_m b_m``
  are averages over the outcome sample's rows of the group-specific slopes and
  products (the coefficient plus, with a varying slope, the group's deviation; with a
  varying mediator path the average of ``a_mj b_mj`` includes their covariance across
  groups).
- Bernoulli outcome (MATH.md section 3): the g-formula over the sample, on the
  probability scale, with R ``mediation``'s names (``control`` is ``t = 0``,
  ``treated`` ``t = 1``; ``direct`` and ``indirect`` the average of the two).

And per group (city), the direct and the joint indirect effect within that group.

:func:`group_slopes` and :func:`treatment_shifts` are defined in
:mod:`vagg_bayes.effects.total` (the total effect uses them too) and importable here.

May import: numpy, scipy, vagg_bayes.bayes, vagg_bayes.effects.total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from vagg_bayes.bayes.fit import EquationFit
from vagg_bayes.bayes.numeric import expit
from vagg_bayes.effects.total import group_slopes, moderator_slopes, treatment_shifts

__all__ = ["Decomposition", "decompose", "gformula", "group_slopes", "treatment_shifts"]

_CHUNK_CELLS = 1_000_000  # draws x rows per array in the g-formula


@dataclass(frozen=True, eq=False)
class Decomposition:
    """Posterior draws of the effects.

    Attributes
    ----------
    draws : dict of str -> ndarray (chain, draw)
        ``total, direct, indirect, indirect:<m> ...`` and, for a Bernoulli outcome, the
        ``:control`` and ``:treated`` parts, in that order.
    group_draws : dict of str -> ndarray (chain, draw, J) or None
        ``direct`` and ``indirect`` (joint) within each group of the outcome equation;
        None without a group.
    group_labels : ndarray (J,) or None
    group_rows : ndarray (J,) or None
        Rows of the outcome sample in each group.
    """

    draws: dict
    group_draws: dict | None
    group_labels: np.ndarray | None
    group_rows: np.ndarray | None


def _groups(outcome: EquationFit):
    design = outcome.design
    if design.group_codes is None:
        return None, np.zeros(design.n, dtype=np.int64), np.array([design.n])
    rows = np.bincount(design.group_codes, minlength=design.n_groups)
    return design.group_labels, design.group_codes, rows


def decompose(outcome: EquationFit, mediators: dict[str, EquationFit]) -> Decomposition:
    """Effects of the treatment per posterior draw, on the outcome's scale.

    Parameters
    ----------
    outcome : EquationFit
        Outcome on treatment, every mediator and the controls.
    mediators : dict of str -> EquationFit
        One Gaussian equation per mediator (mediator on treatment and controls), in
        the spec's order; fitted with the same chains and draws as ``outcome``.

    Returns
    -------
    Decomposition

    Notes
    -----
    Gaussian outcome, with ``w_j`` the share of the sample's rows in group ``j``::

        c_j = c + u^c_j,  a_mj = a_m + u^m_j,  b_mj = b_m + u^b_mj  (u = 0 unless varying)
        direct = sum_j w_j c_j,   indirect:<m> = sum_j w_j a_mj b_mj
                 (= mean(a) mean(b) + cov_w(a_m., b_m.) across groups),
        indirect = sum_m indirect:<m>,   total = direct + indirect   (exact per draw)

    Within group ``j``: ``direct_j = c_j`` and ``indirect_j = sum_m b_mj a_mj``.

    Bernoulli outcome: see :func:`gformula`.
    """
    draws_shape = outcome.beta.shape[:2]
    for name, fit in mediators.items():
        if fit.beta.shape[:2] != draws_shape:
            raise ValueError(
                f"The equation of {name} has {fit.beta.shape[:2]} (chains, draws) but the "
                f"outcome equation {draws_shape}; fit every equation with the same settings."
            )
    if outcome.family == "bernoulli":
        return gformula(outcome, mediators)
    labels, _, rows = _groups(outcome)
    w = rows / rows.sum()
    among = outcome.design  # moderators: slopes averaged over each group's rows
    c_j = group_slopes(outcome, labels, among=among)  # (C, D, J)
    path_j = {m: group_slopes(outcome, labels, m) * group_slopes(f, labels, among=among)
              for m, f in mediators.items()}  # b_mj a_mj
    paths = {f"indirect:{m}": v @ w for m, v in path_j.items()}
    direct = c_j @ w
    indirect = sum(paths.values(), np.zeros(draws_shape))
    draws = {"total": direct + indirect, "direct": direct, "indirect": indirect, **paths}
    group = None
    if labels is not None:
        group = {"direct": c_j, "indirect": sum(path_j.values(), np.zeros(c_j.shape))}
    return Decomposition(draws, group, labels, None if labels is None else rows)


def _with_moderators(base: np.ndarray, extra: np.ndarray | None,
                     factor: np.ndarray | None = None) -> np.ndarray:
    """Add the moderators' part to row-level slopes.

    ``base`` plus ``extra`` (times ``factor``: the mediator's path to the outcome, for a
    product of paths); ``base`` itself when there are no moderators.
    """
    if extra is None:
        return base
    return base + (extra if factor is None else factor * extra)


def gformula(outcome: EquationFit, mediators: dict[str, EquationFit]) -> Decomposition:
    """Natural direct and indirect effects of a Bernoulli (logit) outcome, per draw.

    Returns
    -------
    Decomposition

    Notes
    -----
    With ``eta_i`` the fitted linear predictor of row ``i`` at its observed values,
    ``d_i(t) = t - t_i`` (binary treatment, ``t`` in {0, 1}) or ``d(t0) = 0, d(t1) = 1``
    (continuous: the observed value and that plus one), the potential mediators are
    ``M_k(t) = M_k + a_kj d(t)``, so the linear predictor with the treatment at ``t``
    and mediator ``k`` at ``t_k`` is ``eta_i + c_j d(t) + sum_k s_k d(t_k)`` with
    ``s_k = b_kj a_kj``. With ``F`` the inverse logit and means over rows::

        NDE(t)   = mean F(eta(1, M(t)))            - F(eta(0, M(t)))
        NIE(t)   = mean F(eta(t, M(1)))            - F(eta(t, M(0)))
        NIE_k(t) = mean F(eta(t, M_k(1), M_-k(t))) - F(eta(t, M_k(0), M_-k(t)))
        total    = mean F(eta(1, M(1)))            - F(eta(0, M(0)))
                 = NDE(0) + NIE(1) = NDE(1) + NIE(0)

    so ``total = direct + indirect`` exactly for the averages ``direct = (NDE(0) +
    NDE(1)) / 2`` and ``indirect = (NIE(0) + NIE(1)) / 2``. The per-path effects need
    not add up to the joint one (the link is not linear). The observed mediator
    residuals are kept as each unit's own noise. Draws are processed in chunks so that
    memory stays at a few arrays of ``_CHUNK_CELLS`` cells.
    """
    design = outcome.design
    labels, codes, rows = _groups(outcome)
    J = len(rows)
    n_chains, n_draws = outcome.beta.shape[:2]
    CD = n_chains * n_draws
    d0, d1 = treatment_shifts(design.X[:, design.treatment_index])
    c_j = group_slopes(outcome, labels).reshape(CD, J)
    b_j = {m: group_slopes(outcome, labels, m).reshape(CD, J) for m in mediators}
    s_j = {m: b_j[m] * group_slopes(f, labels).reshape(CD, J) for m, f in mediators.items()}
    names = ["total", "direct:control", "direct:treated", "indirect:control",
             "indirect:treated"]
    for m in mediators:
        names += [f"indirect:{m}:control", f"indirect:{m}:treated"]
    out = {name: np.empty(CD) for name in names}
    G = sparse.csr_matrix((1.0 / rows[codes], (np.arange(design.n), codes)),
                          shape=(design.n, J))  # row -> group mean weights
    group = {"direct": np.empty((CD, J)), "indirect": np.empty((CD, J))}
    step = max(1, _CHUNK_CELLS // design.n)
    for start in range(0, CD, step):
        sl = slice(start, min(start + step, CD))
        eta = outcome.linear_predictor(sl)
        c = _with_moderators(c_j[sl][:, codes], moderator_slopes(outcome, design, sl))
        rows_s = {m: _with_moderators(s[sl][:, codes], moderator_slopes(mediators[m], design, sl),
                                      b_j[m][sl][:, codes])
                  for m, s in s_j.items()}
        S = sum(rows_s.values()) if rows_s else np.zeros_like(eta)
        p00 = expit(eta + (c + S) * d0)
        p11 = expit(eta + (c + S) * d1)
        p10 = expit(eta + c * d1 + S * d0)
        p01 = expit(eta + c * d0 + S * d1)
        out["total"][sl] = (p11 - p00).mean(axis=1)
        nde = (p10 - p00, p11 - p01)
        nie = (p01 - p00, p11 - p10)
        for t, label in ((0, "control"), (1, "treated")):
            out[f"direct:{label}"][sl] = nde[t].mean(axis=1)
            out[f"indirect:{label}"][sl] = nie[t].mean(axis=1)
        group["direct"][sl] = np.asarray(((nde[0] + nde[1]) / 2) @ G)
        group["indirect"][sl] = np.asarray(((nie[0] + nie[1]) / 2) @ G)
        del nde, nie, p10, p01
        for m in s_j:
            sk = rows_s[m]
            rest = S - sk
            ctl = expit(eta + (c + rest) * d0 + sk * d1) - p00
            trt = p11 - expit(eta + (c + rest) * d1 + sk * d0)
            out[f"indirect:{m}:control"][sl] = ctl.mean(axis=1)
            out[f"indirect:{m}:treated"][sl] = trt.mean(axis=1)
    draws = {"total": out["total"]}
    draws["direct"] = (out["direct:control"] + out["direct:treated"]) / 2
    draws["indirect"] = (out["indirect:control"] + out["indirect:treated"]) / 2
    for m in mediators:
        draws[f"indirect:{m}"] = (out[f"indirect:{m}:control"]
                                  + out[f"indirect:{m}:treated"]) / 2
    for name in names[1:]:
        draws[name] = out[name]
    draws = {k: v.reshape(n_chains, n_draws) for k, v in draws.items()}
    group_draws = None
    if labels is not None:
        group_draws = {k: v.reshape(n_chains, n_draws, J) for k, v in group.items()}
    return Decomposition(draws, group_draws, labels, None if labels is None else rows)

"""First-stage strength of instruments: partial R², F (classical and cluster-robust).

The first stage regresses the treatment ``v`` on the instruments ``Z`` (``m`` columns)
and the exogenous regressors ``X`` (intercept, controls, time indicators) by least
squares. With ``e_r`` the residuals of ``v`` on ``X`` alone and ``e_f`` those on
``[Z, X]`` (``n`` rows, ``k`` columns in ``[Z, X]``)::

    partial R²  = (e_r'e_r - e_f'e_f) / e_r'e_r
    F           = ((e_r'e_r - e_f'e_f) / m) / (e_f'e_f / (n - k))          (classical)
    F_cluster   = pi' V_pi^-1 pi / m                                       (cluster-robust)

where ``pi`` are the instruments' coefficients and ``V_pi`` their block of the CR1
sandwich ``c (A'A)^-1 (sum_g A_g'e_g e_g'A_g) (A'A)^-1`` with ``A = [Z, X]`` and
``c = G / (G - 1) (n - 1) / (n - k)`` for ``G`` clusters (Stata's and statsmodels'
small-sample factor). The F used for the warning is the cluster-robust one when there
are clusters, else the classical one. Rules of thumb: F < 10 is a weak instrument
(Staiger & Stock 1997); Stock & Yogo (2005) give critical values of the first-stage F
for one endogenous regressor under which 2SLS's nominal 5 % Wald test has actual size
above 10 % (16.38 with one instrument). Those values assume homoskedastic, independent
errors; with clustered errors compare the cluster-robust F with care (Montiel Olea &
Pflueger's effective F is the formal test).

May import: numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WEAK_F = 10.0
# Stock & Yogo (2005), Table 5.2: 2SLS, one endogenous regressor, 10 % maximal size of a
# nominal 5 % Wald test, by number of instruments.
STOCK_YOGO_10PCT_SIZE = {1: 16.38, 2: 19.93, 3: 22.30, 4: 24.58, 5: 26.87}


@dataclass(frozen=True)
class FirstStage:
    """First-stage strength; ``to_dict()`` is what ``diagnostics.json`` records.

    Attributes
    ----------
    instruments : tuple of str
    n : int
        Rows of the first-stage regression.
    level : str
        What a row is (``"rows"`` or ``"group-time cells"``).
    partial_r2 : float
        Share of the treatment's variance left by the controls that the instruments
        explain.
    f_classical : float
        Classical (homoskedastic) F of the instruments.
    f_cluster : float or None
        Cluster-robust (CR1) Wald F by ``cluster``; None without clusters.
    cluster : str or None
    n_clusters : int or None
    coefficients : dict of str -> float
        The instruments' least-squares coefficients.
    """

    instruments: tuple[str, ...]
    n: int
    level: str
    partial_r2: float
    f_classical: float
    f_cluster: float | None
    cluster: str | None
    n_clusters: int | None
    coefficients: dict

    @property
    def f(self) -> float:
        """The F the warning uses: cluster-robust when there are clusters."""
        return self.f_cluster if self.f_cluster is not None else self.f_classical

    @property
    def f_kind(self) -> str:
        if self.f_cluster is not None:
            return f"cluster-robust (CR1) by {self.cluster}, {self.n_clusters} clusters"
        return "classical (homoskedastic)"

    @property
    def stock_yogo(self) -> float | None:
        """Stock–Yogo critical value (10 % maximal size), None beyond 5 instruments."""
        return STOCK_YOGO_10PCT_SIZE.get(len(self.instruments))

    @property
    def weak(self) -> bool:
        """F below 10 (Staiger–Stock), or not finite."""
        return not np.isfinite(self.f) or self.f < WEAK_F

    def warning(self) -> str | None:
        """The weak-instrument message, or None for a strong first stage."""
        names = ", ".join(self.instruments)
        sy = self.stock_yogo
        sy_text = (f"Stock–Yogo's critical value for 10 % maximal size of a 5 % Wald test "
                   f"with {len(self.instruments)} instrument(s) is {sy:.2f}"
                   if sy is not None else
                   "Stock–Yogo's critical values for 10 % maximal size rise with the number "
                   "of instruments (16.38 for one, 26.87 for five)")
        if self.weak:
            return (
                f"WEAK INSTRUMENT: the first-stage F of {names} is {self.f:.2f} "
                f"({self.f_kind}; partial R² {self.partial_r2:.4f}), below 10 "
                f"(Staiger–Stock rule of thumb); {sy_text}. The IV estimate is then biased "
                "towards the confounded estimate and its interval is unreliable. Find a "
                "stronger instrument, or report the estimate as weakly identified."
            )
        if sy is not None and self.f < sy:
            return (
                f"Instrument {names}: first-stage F {self.f:.2f} ({self.f_kind}) is above 10 "
                f"but below {sy_text}; some size distortion of the IV interval is possible."
            )
        return None

    def to_dict(self) -> dict:
        return {
            "instruments": list(self.instruments),
            "n_instruments": len(self.instruments),
            "n": self.n,
            "level": self.level,
            "partial_r2": self.partial_r2,
            "f": self.f,
            "f_kind": self.f_kind,
            "f_classical": self.f_classical,
            "f_cluster": self.f_cluster,
            "cluster": self.cluster,
            "n_clusters": self.n_clusters,
            "coefficients": dict(self.coefficients),
            "weak": bool(self.weak),
            "weak_threshold": WEAK_F,
            "stock_yogo_10pct_size": self.stock_yogo,
            "warning": self.warning(),
        }


def first_stage_strength(v: np.ndarray, Z: np.ndarray, X: np.ndarray, *,
                         instruments: tuple[str, ...], clusters: np.ndarray | None = None,
                         cluster: str | None = None, level: str = "rows") -> FirstStage:
    """Partial R² and F of the instruments ``Z`` (n, m) for ``v`` given ``X`` (n, p).

    ``X`` must contain the intercept. ``clusters`` (n,) labels give the cluster-robust F
    (needs at least two clusters, and more clusters than instruments).
    """
    v = np.asarray(v, dtype=float)
    Z = np.asarray(Z, dtype=float).reshape(len(v), -1)
    X = np.asarray(X, dtype=float)
    n, m = Z.shape
    A = np.column_stack([Z, X])
    k = A.shape[1]
    coef_f, *_ = np.linalg.lstsq(A, v, rcond=None)
    coef_r, *_ = np.linalg.lstsq(X, v, rcond=None)
    e_f = v - A @ coef_f
    e_r = v - X @ coef_r
    rss_f, rss_r = float(e_f @ e_f), float(e_r @ e_r)
    partial = (rss_r - rss_f) / rss_r if rss_r > 0 else float("nan")
    dof = n - k
    f_classical = ((rss_r - rss_f) / m) / (rss_f / dof) if dof > 0 and rss_f > 0 else float("inf")
    f_cluster = n_clusters = None
    if clusters is not None:
        codes = np.unique(np.asarray(clusters), return_inverse=True)[1].ravel()
        G = int(codes.max()) + 1
        if G > max(m, 1):
            bread = np.linalg.pinv(A.T @ A)
            scores = np.zeros((G, k))
            np.add.at(scores, codes, A * e_f[:, None])
            meat = scores.T @ scores
            c = G / (G - 1) * (n - 1) / max(dof, 1)
            V = c * bread @ meat @ bread
            pi = coef_f[:m]
            f_cluster = float(pi @ np.linalg.solve(V[:m, :m], pi) / m)
            n_clusters = G
    return FirstStage(
        instruments=tuple(instruments), n=int(n), level=level, partial_r2=float(partial),
        f_classical=float(f_classical), f_cluster=f_cluster,
        cluster=cluster if f_cluster is not None else None, n_clusters=n_clusters,
        coefficients={name: float(c) for name, c in zip(instruments, coef_f[:m], strict=True)},
    )

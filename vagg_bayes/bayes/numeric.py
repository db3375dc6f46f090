"""Numerically stable functions of the logistic family, and ``log(2 pi)``, written once.

Every function takes any real array (``+-inf`` included where noted) and uses NumPy's
vectorised (SIMD) ``exp`` and ``log`` rather than ``log1p`` or ``where``, which are
not vectorised.

Also :func:`numba_jit`, how every numba kernel of the package is compiled.

May import: numpy, numba (lazily).
"""

from __future__ import annotations

import numpy as np

#: ``log(2 pi)``, the constant of a normal log-density.
LOG_2PI = float(np.log(2 * np.pi))


def softplus(eta: np.ndarray) -> np.ndarray:
    """``log(1 + exp(eta))``, stable for any ``eta``, with vectorised ``exp`` and ``log``.

    Computed as ``max(eta, 0) + log(1 + exp(-|eta|))``: the absolute error of ``log``
    against ``log1p`` is below 1e-16.
    """
    eta = np.asarray(eta, dtype=float)
    e = np.abs(eta, out=np.empty_like(eta))
    np.negative(e, out=e)
    np.exp(e, out=e)
    e += 1.0
    np.log(e, out=e)
    e += np.maximum(eta, 0.0)
    return e


def softplus_sigmoid(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log(1 + exp(eta))`` and ``1 / (1 + exp(-eta))`` together, stable for any ``eta``.

    One pass serves both (a logistic log-likelihood needs the first, its gradient the
    second): ``softplus`` as in :func:`softplus`, then ``sigmoid = exp(eta -
    softplus)``.
    """
    eta = np.asarray(eta, dtype=float)
    sp = softplus(eta)
    sig = np.subtract(eta, sp)
    np.exp(sig, out=sig)
    return sp, sig


def expit(x) -> np.ndarray:
    """Return the inverse logit ``1 / (1 + exp(-x))`` (``scipy.special.expit``'s formula).

    ``exp(-x)`` overflows to ``inf`` for ``x < -709``, which gives the right limit 0;
    the overflow is not reported.
    """
    x = np.asarray(x, dtype=float)
    out = np.negative(x, out=np.empty_like(x))
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


def log_expit(x) -> np.ndarray:
    """``log(expit(x)) = -softplus(-x)``, stable for any ``x`` (the log-sigmoid).

    A Bernoulli log-likelihood is ``y log_expit(eta) + (1 - y) log_expit(-eta) = y eta -
    softplus(eta)``.
    """
    out = softplus(-np.asarray(x, dtype=float))
    np.negative(out, out=out)
    return out


def numba_jit(func, fastmath: bool | set = False):
    """Compile ``func`` with numba, cached on disk where numba finds a writable place.

    That is next to the module of ``func``, else the user's cache folder; where numba
    finds none (a read-only install without a writable home), it compiles afresh in each
    process. ``fastmath``: numba's flags (a set such as ``{"reassoc"}`` lets sums be
    vectorised).
    """
    import numba

    try:
        return numba.njit(cache=True, error_model="numpy", fastmath=fastmath)(func)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(error_model="numpy", fastmath=fastmath)(func)

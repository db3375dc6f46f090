"""What the refit-based tests share: seeds, assignment levels, labels, figures.

Their seeds, the level a column is assigned at, the group labels, and the figure of a
distribution of refit estimates.

Seeds: a test's randomness comes from ``SeedSequence(options.seed, spawn_key=(code of
the test's name, stream, replicate))``, so replicate ``k`` of a test gets the same
permutation, subset and refit seed whatever the number of replicates (a longer run
extends a shorter one, and a resumed run finds its finished refits).

May import: numpy, pandas, matplotlib (lazily), the standard library,
vagg_bayes.refute.transforms.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.refute.transforms import plain_labels

#: streams of a test's seed
PLAN, REFIT = 0, 1


def name_code(name: str) -> int:
    """Return a stable 32-bit code of a test's name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def seed_for(seed: int, name: str, stream: int, index: int = 0) -> np.random.SeedSequence:
    """Return the seed of replicate ``index`` of test ``name`` in stream ``stream``."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(name_code(name), stream,
                                                                int(index)))


def refit_seeds(seed: int, name: str, n: int) -> list[np.random.SeedSequence]:
    """Return the seeds of the ``n`` refits of a test."""
    return [seed_for(seed, name, REFIT, k) for k in range(n)]


def rng_for(seed: int, name: str, index: int = 0) -> np.random.Generator:
    """Return the generator of replicate ``index``'s random choices."""
    return np.random.default_rng(seed_for(seed, name, PLAN, index))


@dataclass(frozen=True)
class Level:
    """Where a column is assigned.

    ``kind`` is "group", "unit" or "row"; ``entity`` the column whose values carry it
    (group or unit column; None for rows); ``time`` the spec's time column.
    """

    kind: str
    entity: str | None
    time: str | None

    def describe(self, column: str) -> str:
        """``"va is constant within city_id-year cells: ..."`` (for details)."""
        if self.kind == "group":
            cells = f"{self.entity} x {self.time} cells" if self.time else f"{self.entity}"
            return f"'{column}' is assigned by {self.entity} (constant within {cells})"
        if self.kind == "unit":
            return f"'{column}' varies within groups; assigned by unit {self.entity}"
        return f"'{column}' varies within groups and units; assigned by row"


def constant_within(data: pd.DataFrame, column: str, keys: list[str]) -> bool:
    """Whether ``column`` takes one value within every cell of ``keys``."""
    return bool(data.groupby(keys, sort=False)[column].nunique(dropna=False).le(1).all())


def assignment_level(data: pd.DataFrame, spec, column: str) -> Level:
    """Find the level at which ``column`` (the treatment, a mediator) is assigned.

    ``group`` when it is constant within (group, time) cells (within groups without a
    time column); else ``unit`` when the spec has units; else ``row``.
    """
    time = spec.time
    if spec.group is not None:
        keys = [spec.group, time] if time else [spec.group]
        if constant_within(data, column, keys):
            return Level("group", spec.group, time)
    if spec.unit is not None:
        return Level("unit", spec.unit, time)
    return Level("row", None, time)


def entity_labels(data: pd.DataFrame, column: str) -> tuple:
    """Return the distinct values of ``column``, sorted (as plain Python values)."""
    values = pd.unique(data[column])
    try:
        values = np.sort(values)
    except TypeError:  # mixed types: sort by text
        values = sorted(values, key=str)
    return plain_labels(values)


def strata_of(data: pd.DataFrame, entity: str, strata: str | None) -> dict | None:
    """Entity label -> its stratum (``strata`` must be constant within entities)."""
    if strata is None:
        return None
    first = data.groupby(data[entity].map(lambda v: plain_labels([v])[0]),
                         sort=False)[strata].first()
    return {k: plain_labels([v])[0] for k, v in first.items()}


def figure_writer(title: str, distributions: dict[str, np.ndarray], reals: dict[str, float],
                  *, xlabel: str = "estimate"):
    """Return ``write(path)``, drawing one histogram per effect.

    The refits' estimates, the real estimate (solid line) and zero (dotted).
    """
    distributions = {k: np.asarray(v, dtype=float) for k, v in distributions.items()}
    reals = dict(reals)

    def write(path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(distributions)
        cols = min(3, max(1, len(names)))
        rows = math.ceil(len(names) / cols) if names else 1
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        for ax, name in zip(axes.ravel()[: len(names)], names, strict=True):
            values = distributions[name]
            values = values[np.isfinite(values)]
            if values.size:
                ax.hist(values, bins=min(30, max(5, values.size // 3)), color="0.7",
                        edgecolor="0.4", label="refits")
            ax.axvline(reals[name], color="C3", lw=2, label="real estimate")
            ax.axvline(0.0, color="k", lw=1, ls=":")
            ax.set_title(name, fontsize=10)
            ax.set_xlabel(xlabel)
        axes.ravel()[0].legend(fontsize=8, frameon=False)
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=110)
        plt.close(fig)

    return write

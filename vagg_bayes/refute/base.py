"""What every refutation test returns, and what it is given.

A refutation test is a function ``test(context) -> Outcome`` registered under its name
(``placebo_permute_groups``, ``graph_independence``, ...). It returns one
:class:`Row` per effect it judges (the total effect and, with mediators, the direct and
every indirect effect) and optionally figures. ``refutations.csv`` is the rows in
order, with DESIGN.md section 4.3's columns first.

Verdicts are three-valued: ``"pass"``, ``"fail"`` or ``"inconclusive"`` (the data
cannot decide: too few cities for a permutation test, refits that failed their
diagnostics, ...). ``passed`` is ``True``/``False`` for pass/fail and empty for
inconclusive; ``detail`` always states the pass rule and what was seen.

May import: numpy, pandas, arviz (lazily), the standard library, vagg_bayes.errors;
``Analysis`` and ``EstimateResult`` only for type hints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vagg_bayes.errors import VaggBayesError

if TYPE_CHECKING:  # pragma: no cover
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.report.result import EstimateResult

class RefutationError(VaggBayesError, ValueError):
    """A refutation run was asked for something it cannot do.

    An unknown test name, a stratum that varies within groups, ...; raised before any
    sampling.
    """


#: DESIGN.md section 4.3: these columns first, in this order.
CONTRACT_COLUMNS = ("refuter", "estimate", "refuted_estimate", "hdi_low", "hdi_high",
                    "passed", "detail")
#: Extra columns after the contract's.
EXTRA_COLUMNS = ("effect", "verdict", "p_value", "mc_se", "n_refits", "n_failed",
                 "seconds")
VERDICTS = ("pass", "fail", "inconclusive")


@dataclass(frozen=True)
class Row:
    """One line of ``refutations.csv``: one test judged on one effect.

    ``estimate`` is the posterior mean of the effect on the real data;
    ``refuted_estimate`` the test's counterpart (mean of the placebo estimates, the
    estimate without a city, under a wider prior, ...); ``hdi_low``/``hdi_high`` the
    94 % interval that the pass rule reads (say which in ``detail``).
    """

    refuter: str
    effect: str
    estimate: float
    refuted_estimate: float
    hdi_low: float
    hdi_high: float
    verdict: str
    detail: str
    p_value: float = math.nan
    mc_se: float = math.nan
    n_refits: int = 0
    n_failed: int = 0
    seconds: float = math.nan

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}; got {self.verdict!r}")
        if not self.detail:
            raise ValueError("detail must state the pass rule")

    @property
    def passed(self) -> bool | None:
        """``True`` for pass, ``False`` for fail, ``None`` for inconclusive."""
        return {"pass": True, "fail": False}.get(self.verdict)


@dataclass
class Outcome:
    """What one test returns: its rows, and figures (file name -> writer(path))."""

    rows: list[Row]
    figures: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    """The user's choices for a refutation run (recorded in the manifest).

    Attributes
    ----------
    placebos : int, default 100
        Permutations of ``placebo_permute_groups`` (all of them, fewer refits, when the
        groups allow at most this many assignments).
    strata : str, optional
        Column constant within groups: permutations stay within its levels.
    drop_groups : tuple of str
        Groups dropped together as one extra row of ``leave_one_group_out``.
    subset_fraction, subsets : float, int, default 0.8, 20
        Share of groups kept and number of subsets (``data_subset``).
    bootstraps : int, default 50
        Cluster-bootstrap replicates (``group_bootstrap``).
    lead : int, default 1
        Periods the treatment is led by (``placebo_time``).
    seed : int, default 0
        Seed of every random choice of the run (permutations, subsets, simulated
        outcomes, refit seeds): the same seed gives the same table.
    workers, scheduler
        Parallel worker processes; address of a Dask scheduler.
    replicates : int, default 3
        Refits of the simulate-and-refit tests (``dummy_outcome``, ``placebo_mediator``,
        ``random_common_cause``).
    loo_max_groups : int, default 60
        ``leave_one_group_out`` refits every group up to this many groups, else the
        this many most influential by a classical pre-screen.
    alpha : float, default 0.05
        Level of the randomization test.
    tolerance : float, default 0.5
        Largest move of the mean, in posterior SDs, that ``random_common_cause``,
        ``data_subset`` and ``group_bootstrap`` allow.
    loo_tolerance : float, default 1.0
        Largest move, in posterior SDs, that dropping one group (or the named
        groups) may cause.
    bootstrap_sd_ratio : float, default 1.5
        Largest ratio of the cluster-bootstrap SD of the mean to the posterior SD.
    require_diagnostics : bool, default True
        Refits that fail their diagnostics make a verdict inconclusive (a single fit),
        or do when more than half of the refits fail them.
    """

    placebos: int = 100
    strata: str | None = None
    drop_groups: tuple[str, ...] = ()
    subset_fraction: float = 0.8
    subsets: int = 20
    bootstraps: int = 50
    lead: int = 1
    seed: int = 0
    workers: int = 1
    scheduler: str | None = None
    replicates: int = 3
    loo_max_groups: int = 60
    alpha: float = 0.05
    tolerance: float = 0.5
    loo_tolerance: float = 1.0
    bootstrap_sd_ratio: float = 1.5
    require_diagnostics: bool = True

    def __post_init__(self) -> None:
        for name in ("placebos", "subsets", "bootstraps", "lead", "workers", "replicates",
                     "loo_max_groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Options.{name} must be a positive integer; got {value!r}.")
        if not 0 < self.subset_fraction < 1:
            raise ValueError("Options.subset_fraction must lie strictly between 0 and 1; "
                             f"got {self.subset_fraction!r}.")
        if not 0 < self.alpha < 1:
            raise ValueError(f"Options.alpha must lie strictly between 0 and 1; got "
                             f"{self.alpha!r}.")
        object.__setattr__(self, "drop_groups", tuple(str(g) for g in self.drop_groups))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (recorded in the manifest)."""
        record = asdict(self)
        record["drop_groups"] = list(self.drop_groups)
        return record


@dataclass
class Context:
    """What a test is given: the fitted analysis, its result, the validated data."""

    analysis: Analysis
    result: EstimateResult
    data: pd.DataFrame
    options: Options
    #: runs many refits (parallel workers, Dask, resume cache); set by the runner
    refits: Any = None

    @property
    def spec(self):
        """The analysis' spec."""
        return self.analysis.spec

    def effect_names(self) -> list[str]:
        """Name the effects every test judges.

        ``total`` and, with mediators, ``direct`` and each ``indirect:<mediator>`` (plus
        ``indirect`` when there are several).
        """
        return list(self.result.effect_draws)


def rows_frame(rows: list[Row]) -> pd.DataFrame:
    """Rows -> the ``refutations.csv`` table, contract columns first."""
    records = []
    for row in rows:
        record = asdict(row)
        record["passed"] = row.passed
        records.append(record)
    columns = [*CONTRACT_COLUMNS, *EXTRA_COLUMNS]
    return pd.DataFrame.from_records(records, columns=columns)


def hdi(values: np.ndarray, prob: float = 0.94) -> tuple[float, float]:
    """Highest-density interval of a 1-D sample (ArviZ's)."""
    import arviz as az

    values = np.asarray(values, dtype=float).ravel()
    low, high = az.hdi(values, hdi_prob=prob)
    return float(low), float(high)


Test = Callable[[Context], Outcome]
REGISTRY: dict[str, Test] = {}


def register(name: str) -> Callable[[Test], Test]:
    """Register a test under ``name`` (the ``--tests`` spelling); a decorator."""

    def wrap(fn: Test) -> Test:
        if name in REGISTRY:
            raise ValueError(f"refutation test {name!r} registered twice")
        REGISTRY[name] = fn
        return fn

    return wrap


def effect_draws(result: EstimateResult) -> Mapping[str, np.ndarray]:
    """Return the effect draws of a result (name -> (chain, draw) array)."""
    return result.effect_draws

"""The equations a spec implies, and their designs: the outcome and one per mediator.

One Gaussian equation per mediator (mediator on treatment, controls, time, unit and
group effects; a varying treatment slope with ``spec.varying_slope``) and the outcome
equation (outcome on treatment, every mediator and the controls; the slope of
``spec.varying_mediator`` varying by group when set). A *city-level* mediator
(constant within every (group, time) cell, or within every group when there is no
time column) is fitted on one row per cell, with only the regressors that are constant
within cells (the city-level controls) plus the time effects, not on repeated firm rows
that would overstate its information. With a Gaussian outcome, ``varying_mediator`` and
``varying_slope``, that mediator's equation and the outcome's are fitted jointly
(:func:`joint_mediator`).

With ``spec.moderators`` every equation also holds each moderator's indicators and their
products with the treatment (a city-level mediator's equation only those of moderators
constant within its cells), so the treatment's effect may differ by level.

Every function takes an optional ``reference`` (the designs of the first fit), so a
refit or a prediction encodes new rows exactly as the first fit did.

May import: numpy, pandas, vagg_bayes.bayes.design, vagg_bayes.data.degenerate,
vagg_bayes.spec.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vagg_bayes.bayes.design import Design, build_design
from vagg_bayes.spec import Spec

OUTCOME = "outcome"  # key of the outcome equation (fits, designs, models)


def mediator_level(panel: pd.DataFrame, spec: Spec, mediator: str) -> str:
    """``"group-time"``, ``"group"`` (constant within those cells) or ``"row"``."""
    if spec.group is None:
        return "row"
    keys = [spec.group, spec.time] if spec.time else [spec.group]
    constant = panel.groupby(keys, sort=False)[mediator].nunique(dropna=False).le(1).all()
    if constant:
        return "group-time" if spec.time else "group"
    return "row"


def cell_frame(panel: pd.DataFrame, spec: Spec) -> tuple[pd.DataFrame, list[str]]:
    """One row per (group, time) cell, and the regressors constant within cells.

    Returns
    -------
    frame : DataFrame
        The first row of every cell (sorted by the cell keys).
    regressors : list of str
        ``[treatment, *controls]`` restricted to columns constant within every cell.
    """
    keys = [spec.group, spec.time] if spec.time else [spec.group]
    grouped = panel.groupby(keys, sort=True)
    candidates = [spec.treatment, *spec.controls]
    n_unique = grouped[candidates].nunique(dropna=False)
    regressors = [c for c in candidates if bool(n_unique[c].le(1).all())]
    frame = grouped.first().reset_index()
    return frame, regressors


def mediator_design(panel: pd.DataFrame, spec: Spec, mediator: str, *,
                    reference: Design | None = None, source: str = "data") -> tuple[Design, dict]:
    """The design of one mediator's equation and a plain-JSON note on it."""
    level = mediator_level(panel, spec, mediator)
    note = {"level": level}
    if level != "row":
        frame, regressors = cell_frame(panel, spec)
        if spec.treatment in regressors:
            # one row per cell: no repeated units, and a cell effect would be the residual
            keys = [spec.group, spec.time] if spec.time else [spec.group]
            constant = panel.groupby(keys, sort=False)[list(spec.moderators)].nunique() \
                if spec.moderators else None
            moderators = [m for m in spec.moderators if bool(constant[m].le(1).all())]
            design = build_design(frame, spec, response=mediator, regressors=regressors,
                                  unit_effects="none", group_time=False, reference=reference,
                                  source=source, moderators=moderators)
            dropped = [c for c in spec.controls if c not in regressors]
            note.update(rows=design.n, regressors=regressors, dropped_controls=dropped)
            return design, note
        note.update(level="row", note=f"{mediator} is constant within cells but the "
                    f"treatment is not; fitted on every row")
    design = build_design(panel, spec, response=mediator,
                          regressors=[spec.treatment, *spec.controls], reference=reference,
                          source=source, moderators=list(spec.moderators))
    note.update(rows=design.n, regressors=[spec.treatment, *spec.controls],
                dropped_controls=[])
    return design, note


def joint_mediator(spec: Spec, designs: dict, y_design: Design) -> str | None:
    """The mediator fitted jointly with the outcome, or None.

    A Gaussian outcome whose ``varying_mediator`` path varies, when that mediator's
    treatment path varies too (``varying_slope``) over the same groups: then the two
    equations share one group covariance (:func:`~vagg_bayes.bayes.fit.fit_joint_pair`).
    """
    m = spec.varying_mediator
    if m is None or spec.family != "gaussian" or not spec.varying_slope:
        return None
    d = designs[m]
    if len(d.varying) != 2 or not np.array_equal(np.asarray(d.group_labels),
                                                 np.asarray(y_design.group_labels)):
        return None
    return m


def outcome_design(panel: pd.DataFrame, spec: Spec, response: str | None = None, *,
                   reference: Design | None = None, source: str = "data") -> Design:
    """The outcome equation's design: treatment, every mediator, the controls; the slope
    of ``spec.varying_mediator`` (else, with ``spec.varying_slope``, the treatment's)
    varying by group."""
    return build_design(panel, spec, response=response,
                        regressors=[spec.treatment, *spec.mediators, *spec.controls],
                        varying_column=spec.varying_mediator,
                        reference=reference, source=source,
                        moderators=list(spec.moderators))




def equation_designs(panel: pd.DataFrame, spec: Spec, *,
                     reference: dict[str, Design] | None = None,
                     source: str = "data") -> tuple[dict, dict]:
    """The design of every equation of ``spec`` on ``panel``, and notes on the mediators.

    Without ``reference`` (a first fit) every design is checked for degenerate columns
    before anything is compiled (:func:`vagg_bayes.data.degenerate.check_design`).

    Parameters
    ----------
    panel : DataFrame
        A validated panel.
    spec : Spec
    reference : dict of str -> Design, optional
        The designs of the first fit (refits and predictions encode rows as it did).
    source : str, default "data"
        The data's name in messages (the file name).

    Returns
    -------
    designs : dict of str -> Design
        ``"outcome"`` first, then one entry per mediator in the spec's order.
    notes : dict of str -> dict
        Per mediator: its level (``row``, ``group``, ``group-time``), rows and regressors.

    Raises
    ------
    DataError
        If an equation's regressors are collinear, its group-level columns saturate the
        groups, or a Gaussian response is an exact function of its regressors.
    """
    ref = reference or {}
    if not spec.mediators:
        design = build_design(panel, spec, reference=ref.get(OUTCOME),
                                    source=source, moderators=list(spec.moderators))
        designs, notes = {OUTCOME: design}, {}
    else:
        designs = {OUTCOME: outcome_design(panel, spec, reference=ref.get(OUTCOME),
                                           source=source)}
        notes = {}
        for m in spec.mediators:
            designs[m], notes[m] = mediator_design(panel, spec, m, reference=ref.get(m),
                                                   source=source)
    if reference is None:
        from vagg_bayes.data.degenerate import check_design

        for name, design in designs.items():
            check_design(design, spec, spec.outcome if name == OUTCOME else name,
                         source=source, family=spec.family if name == OUTCOME else "gaussian")
    return designs, notes

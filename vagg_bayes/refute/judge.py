"""Pass rules shared by the refit-based tests: one function per kind of rule.

Each function turns the real estimate of one effect and the summaries of its refits
(:class:`~vagg_bayes.refute.runner.RefitSummary`) into one
:class:`~vagg_bayes.refute.base.Row`, with the rule and what was seen written out in
``detail``. Rules:

- :func:`randomization_row` — a randomization (permutation) test: p-value of the real
  estimate among the placebo estimates, with its Monte Carlo SE; pass when the real
  estimate stands out (``p < alpha`` beyond Monte Carlo error), fail when it does not,
  inconclusive when neither can be shown or ``p < alpha`` cannot be reached at all;
- :func:`zero_row` — a placebo that must find nothing: pass when the 94 % HDI of the
  placebo posterior (pooled over replicates) covers zero;
- :func:`stability_row` — a perturbation that must not move the estimate: pass when
  the mean moves less than ``tolerance`` posterior SDs (and, for a clearly signed
  estimate, the sign holds);

and the common *inconclusive* conditions: most refits failed, or most failed their
diagnostics when ``Options.require_diagnostics`` is set.

May import: numpy, the standard library, vagg_bayes.refute.base,
vagg_bayes.refute.runner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vagg_bayes.refute.base import Row, hdi
from vagg_bayes.refute.runner import RefitSummary, format_failures

#: 94 % HDI, as every table of the package
HDI_LABEL = "94% HDI"


def real_stats(result, effect: str) -> dict:
    """Return mean, SD and 94 % HDI of ``effect`` in a fitted result."""
    flat = np.asarray(result.effect_draws[effect], dtype=float).ravel()
    low, high = hdi(flat)
    return {"mean": float(flat.mean()), "sd": float(flat.std(ddof=1)), "hdi_low": low,
            "hdi_high": high}


def excludes_zero(stats: dict) -> bool:
    """Tell whether a 94 % HDI lies wholly on one side of zero."""
    return stats["hdi_low"] > 0 or stats["hdi_high"] < 0


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.4g}"


def usable(summaries: Sequence[RefitSummary], *, require_diagnostics: bool,
           ) -> tuple[list[RefitSummary], str | None, str]:
    """Return the refits a verdict can use, why none can (or None), a note on failures.

    Inconclusive when more than half of the refits failed, or, with
    ``require_diagnostics``, more than half failed their diagnostics.
    """
    ok = [s for s in summaries if s.ok]
    n = len(summaries)
    bad_diag = sum(1 for s in ok if s.diagnostics_passed is False)
    notes = [format_failures(summaries)] if len(ok) < n else []
    if bad_diag:
        notes.append(f"{bad_diag} of {len(ok)} refits failed their diagnostics")
    note = "; ".join(notes)
    if n == 0:
        return ok, "no refits were run", note
    if len(ok) * 2 < n:
        return ok, f"most refits failed ({n - len(ok)} of {n})", note
    if require_diagnostics and bad_diag * 2 > len(ok):
        return ok, (f"most refits failed their diagnostics ({bad_diag} of {len(ok)}); run "
                    "longer chains (--draws, --tune)"), note
    return ok, None, note


def _join(*parts: str) -> str:
    """Sentences joined by spaces, each ending with a full stop."""
    out = []
    for part in parts:
        part = (part or "").strip()
        if part:
            out.append(part if part.endswith((".", "!", "?")) else part + ".")
    return " ".join(out)


def randomization_row(refuter: str, effect: str, real: dict,
                      summaries: Sequence[RefitSummary], *, exact: bool, n_space: int,
                      alpha: float, require_diagnostics: bool, what: str) -> Row:
    """Judge one effect by a permutation test.

    ``p = (1 + #{|placebo mean| >= |real mean|}) / (n + 1)`` over the ``n`` placebos
    that finished (two-sided; the +1 counts the real assignment). Random permutations:
    Monte Carlo SE ``sqrt(p (1 - p) / n)``; exact enumeration (``exact``: every one of
    the ``n_space`` assignments) has none. Pass: ``p + 2 SE < alpha``; fail:
    ``p - 2 SE > alpha``; inconclusive in between, when even no placebo as extreme as
    the real estimate could not give ``p + 2 SE < alpha``, or when most refits failed.
    """
    ok, why, note = usable(summaries, require_diagnostics=require_diagnostics)
    means = np.array([s.mean(effect) for s in ok])
    means = means[np.isfinite(means)]
    n = means.size
    rule = (f"Rule: the randomization p-value (two-sided, |placebo mean| >= |real mean|, "
            f"+1 for the real assignment) must be below {alpha} by more than 2 Monte "
            f"Carlo SE to pass and above it by more than 2 SE to fail; inconclusive "
            f"otherwise.")
    excluded = sum(1 for s in ok if effect in s.effects and
                   (s.effects[effect]["hdi_low"] > 0 or s.effects[effect]["hdi_high"] < 0))
    if n:
        low, high = hdi(means) if n > 2 else (float(means.min()), float(means.max()))
        centre = float(means.mean())
    else:
        low = high = centre = math.nan
    if why is not None or n == 0:
        return Row(refuter, effect, real["mean"], centre, low, high, "inconclusive",
                   _join(f"{what}.", f"Inconclusive: {why or 'no placebo estimate'}.",
                         note, rule), n_refits=len(summaries),
                   n_failed=sum(1 for s in summaries if not s.ok))
    count = int(np.sum(np.abs(means) >= abs(real["mean"])))
    p = (1 + count) / (n + 1)
    se = 0.0 if exact else math.sqrt(p * (1 - p) / n)
    best = 1 / (n + 1)
    best_se = 0.0 if exact else math.sqrt(best * (1 - best) / n)
    seen = (f"p = {p:.4f} (Monte Carlo SE {se:.4f}; {count} of {n} placebo means at "
            f"least as far from zero as the real {_fmt(real['mean'])}); {excluded} of "
            f"{len(ok)} placebo posteriors have a {HDI_LABEL} excluding zero (about 6% "
            f"expected); placebo means centre on {_fmt(centre)}.")
    if best + 2 * best_se >= alpha:
        verdict = "inconclusive"
        need = _placebos_needed(alpha)
        why = (f"with {n} {'assignments' if exact else 'placebos'} the smallest attainable "
               f"p is {best:.4f}" + ("" if exact else f" (SE {best_se:.4f})")
               + f", so p < {alpha} cannot be shown"
               + ("" if exact else f"; use at least {need} placebos (--placebos)"))
        verdict_text = f"Inconclusive: {why}."
    elif p + 2 * se < alpha:
        verdict, verdict_text = "pass", "Pass: the real estimate stands out from the placebos."
    elif p - 2 * se > alpha:
        verdict, verdict_text = "fail", ("Fail: the real estimate is not distinguishable from "
                                         "estimates with the treatment reassigned.")
    else:
        verdict, verdict_text = "inconclusive", (
            f"Inconclusive: p is within 2 Monte Carlo SE of {alpha}; run more placebos.")
    return Row(refuter, effect, real["mean"], centre, low, high, verdict,
               _join(f"{what}.", seen, verdict_text, note, rule), p_value=p, mc_se=se,
               n_refits=len(summaries), n_failed=sum(1 for s in summaries if not s.ok))


def _placebos_needed(alpha: float) -> int:
    n = 1
    while True:
        p = 1 / (n + 1)
        if p + 2 * math.sqrt(p * (1 - p) / n) < alpha:
            return n
        n += 1


def pooled_draws(summaries: Sequence[RefitSummary], effect: str) -> np.ndarray:
    """Pool the draws of ``effect`` kept by every finished refit (a mixture)."""
    parts = [np.asarray(s.draws[effect]) for s in summaries if s.ok and effect in s.draws]
    return np.concatenate(parts) if parts else np.array([])


def zero_row(refuter: str, effect: str, real: dict, summaries: Sequence[RefitSummary], *,
             require_diagnostics: bool, what: str) -> Row:
    """Judge a placebo whose effect must vanish.

    Pass when the 94 % HDI of its posterior (the draws of all replicates pooled) covers
    zero, fail when it excludes zero.
    """
    ok, why, note = usable(summaries, require_diagnostics=require_diagnostics)
    draws = pooled_draws(ok, effect)
    if draws.size == 0:
        # summaries without kept draws: their HDIs' union, conservatively
        lows = [s.effects[effect]["hdi_low"] for s in ok if effect in s.effects]
        highs = [s.effects[effect]["hdi_high"] for s in ok if effect in s.effects]
        means = [s.mean(effect) for s in ok if effect in s.effects]
        low, high = (min(lows), max(highs)) if lows else (math.nan, math.nan)
        centre = float(np.mean(means)) if means else math.nan
    else:
        low, high = hdi(draws)
        centre = float(draws.mean())
    rule = (f"Rule: pass when the {HDI_LABEL} of the placebo posterior (replicates pooled) "
            "covers zero, fail when it excludes zero.")
    n_failed = sum(1 for s in summaries if not s.ok)
    if why is not None or not math.isfinite(low):
        return Row(refuter, effect, real["mean"], centre, low, high, "inconclusive",
                   _join(f"{what}.", f"Inconclusive: {why or 'no estimate of ' + effect}.",
                         note, rule), n_refits=len(summaries), n_failed=n_failed)
    covers = low <= 0 <= high
    seen = (f"Placebo {effect}: mean {_fmt(centre)}, {HDI_LABEL} [{_fmt(low)}, {_fmt(high)}] "
            f"over {len(ok)} refit{'s' if len(ok) != 1 else ''}; real {_fmt(real['mean'])}.")
    verdict = "pass" if covers else "fail"
    text = ("Pass: the placebo finds no effect." if covers else
            "Fail: the placebo finds an effect where there should be none.")
    return Row(refuter, effect, real["mean"], centre, low, high, verdict,
               _join(f"{what}.", seen, text, note, rule), n_refits=len(summaries),
               n_failed=n_failed)


def stability_row(refuter: str, effect: str, real: dict,
                  summaries: Sequence[RefitSummary], *, tolerance: float,
                  require_diagnostics: bool, what: str, labels: Sequence[str] | None = None,
                  worst: bool = False, max_flip_share: float = 0.0) -> Row:
    """Judge a perturbation that must not move the estimate.

    ``worst=False`` (subsets, an added random cause): the mean of the refits' means
    must lie within ``tolerance`` posterior SDs of the real mean, and for a clearly
    signed real estimate (94 % HDI excluding zero) at most ``max_flip_share`` of the
    refits may have a mean of the other sign. ``worst=True`` (one refit per dropped
    group): *every* refit's mean must lie within ``tolerance`` SDs and none may flip
    the sign of a clearly signed estimate; ``refuted_estimate`` and the interval are
    those of the refit that moved most, named by ``labels``.
    """
    ok, why, note = usable(summaries, require_diagnostics=require_diagnostics)
    sd = real["sd"] if real["sd"] > 0 else math.nan
    signed = excludes_zero(real)
    n_failed = sum(1 for s in summaries if not s.ok)
    finished = [(k, s) for k, s in enumerate(summaries) if s.ok and effect in s.effects]
    if worst:
        rule = (f"Rule: pass when no single refit moves the mean by more than {tolerance} "
                "posterior SD and, for an estimate whose "
                f"{HDI_LABEL} excludes zero, none flips its sign; fail otherwise. "
                "refuted_estimate, hdi_low and hdi_high: the refit that moved most.")
    else:
        flips = (f"at most {max_flip_share:.0%} of the refits" if max_flip_share
                 else "no refit")
        rule = (f"Rule: pass when the mean over refits lies within {tolerance} posterior SD "
                f"of the real mean and, for an estimate whose {HDI_LABEL} excludes zero, "
                f"{flips} flip{'s' if not max_flip_share else ''} its sign; fail "
                "otherwise. hdi_low and hdi_high: 94% HDI of the refits' means.")
    if why is not None or not finished:
        return Row(refuter, effect, real["mean"], math.nan, math.nan, math.nan,
                   "inconclusive", _join(f"{what}.",
                                         f"Inconclusive: {why or 'no refit finished'}.",
                                         note, rule),
                   n_refits=len(summaries), n_failed=n_failed)
    means = np.array([s.mean(effect) for _, s in finished])
    moves = (means - real["mean"]) / sd
    flipped = [k for (k, _), m in zip(finished, means, strict=True)
               if signed and m * real["mean"] < 0]
    if worst:
        j = int(np.argmax(np.abs(moves)))
        k, top = finished[j]
        centre = means[j]
        low, high = top.effects[effect]["hdi_low"], top.effects[effect]["hdi_high"]
        order = np.argsort(-np.abs(moves))[:5]
        name = (lambda i: str(labels[finished[i][0]])) if labels is not None else \
            (lambda i: f"refit {finished[i][0]}")
        largest = ", ".join(f"{name(i)} {moves[i]:+.2f} SD" for i in order)
        flip_names = [str(labels[k]) if labels is not None else str(k) for k in flipped]
        seen = (f"Largest moves (posterior SDs of the real estimate, {_fmt(sd)}): {largest}. "
                f"Sign flips: {', '.join(flip_names[:10]) if flip_names else 'none'}"
                + (f" ({len(flip_names)})" if len(flip_names) > 10 else "") + ".")
        passed = abs(moves[j]) <= tolerance and not flipped
    else:
        centre = float(means.mean())
        low, high = hdi(means) if means.size > 2 else (float(means.min()), float(means.max()))
        shift = (centre - real["mean"]) / sd
        share = len(flipped) / len(finished)
        seen = (f"Mean over {len(finished)} refits {_fmt(centre)} against the real "
                f"{_fmt(real['mean'])}: a move of {shift:+.2f} posterior SD; refit means "
                f"range over [{_fmt(float(means.min()))}, {_fmt(float(means.max()))}]; "
                + (f"{share:.0%} of them flip the sign." if signed else
                   f"sign flips not judged (the real {HDI_LABEL} covers zero)."))
        passed = abs(shift) <= tolerance and share <= max_flip_share
    verdict = "pass" if passed else "fail"
    return Row(refuter, effect, real["mean"], float(centre), float(low), float(high), verdict,
               _join(f"{what}.", seen, f"{verdict.capitalize()}.", note, rule),
               n_refits=len(summaries), n_failed=n_failed)

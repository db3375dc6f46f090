"""A synthetic firm-year panel drawn from the mechanism DAG, with the true effects beside it.

The generator follows ``models/mechanisms.dot``: a latent city-development level drives
virtual agglomeration (``va``) and log GDP per head; the 1984 telephone density is an
instrument; six parallel mediators (four firm-level, two city-level) carry part of the
effect of ``va`` on export resilience and export survival. An unobserved persistent firm
quality raises both the firm mediators and the outcomes (so the mechanism paths need firm
effects), an unobserved city quality is shared by the city effects of every equation, and
city-year shocks hit the firm mediators and the outcomes. Every structural coefficient,
and the direct, indirect and total effects they imply, are returned in a plain dictionary
so that any estimate can be checked against the truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["simulate_panel", "truth_to_json"]

REGIONS = ("central", "east", "west")  # sorted; "central" is the reference level
OWNERSHIPS = ("foreign", "private", "state")  # sorted; "foreign" is the reference level
SHOCK_YEAR_INDEX = (4, 7, 8, 9)  # 2015, 2018, 2019, 2020 when first_year = 2011
T_DF = 5.0  # degrees of freedom of the Student-t residual of resilience

# --- treatment and city equations (logit scale of va) ----------------------------------
_VA_INTERCEPT = -2.35
_VA_DEV = 0.50  # latent city development U
_VA_TREND = 0.07  # per year
_VA_INSTRUMENT = 0.60  # (ln tel1984 - ln 0.45) x lagged national internet share
_VA_REGION = {"central": 0.0, "east": 0.30, "west": -0.20}
_VA_NOISE = 0.40  # city-year
_TEL_LOG_MEAN = np.log(0.45)
_TEL_LOG_SD = 0.55
_DEV_TREND_MEAN = 0.04
_DEV_TREND_SD = 0.03
_GDP_INTERCEPT = 10.55
_GDP_DEV = 0.45
_GDP_TREND = 0.06
_GDP_REGION = {"central": 0.0, "east": 0.35, "west": -0.15}
_GDP_NOISE = 0.04


@dataclass(frozen=True)
class _Mediator:
    name: str
    level: str  # "firm" or "city"
    description: str
    a: float  # effect of one unit of va on the mediator
    b: float  # effect of the mediator on resilience
    b_s: float  # effect of the mediator on the survival logit
    intercept: float
    gdp: float
    region: dict[str, float]
    firm: dict[str, float]  # size_ln, age_ln, leverage, ownership[...] (firm mediators only)
    sd_city: float  # SD of the equation's own city effect (before the shared city quality)
    sigma: float
    load_firm: float = 0.0  # loading on firm quality q_i (firm mediators only)
    load_city: float = 0.0  # loading on city quality g_c
    load_city_year: float = 0.0  # loading on the city-year shock (firm mediators only)


_MEDIATORS: tuple[_Mediator, ...] = (
    _Mediator(
        "m_cost", "firm", "operating cost (index); va lowers it, it lowers resilience",
        a=-0.50, b=-0.10, b_s=-0.20, intercept=-0.77, gdp=0.10,
        region={"east": 0.05, "west": -0.05},
        firm={"size_ln": -0.10, "age_ln": 0.05, "leverage": 0.30,
              "ownership[private]": 0.0, "ownership[state]": 0.15},
        sd_city=0.25, sigma=0.80,
        load_firm=-1.0, load_city=-0.5, load_city_year=1.0,
    ),
    _Mediator(
        "m_speed", "firm", "market response speed (index)",
        a=0.40, b=0.12, b_s=0.22, intercept=-1.75, gdp=0.15,
        region={"east": 0.10, "west": -0.10},
        firm={"size_ln": 0.05, "age_ln": -0.05, "leverage": -0.20,
              "ownership[private]": 0.10, "ownership[state]": -0.20},
        sd_city=0.25, sigma=0.80,
        load_firm=1.0, load_city=0.5, load_city_year=1.0,
    ),
    _Mediator(
        "m_supply", "firm", "supply-chain flexibility (index)",
        a=0.45, b=0.10, b_s=0.18, intercept=-1.65, gdp=0.10,
        region={"east": 0.05, "west": -0.05},
        firm={"size_ln": 0.10, "age_ln": 0.0, "leverage": -0.10,
              "ownership[private]": 0.0, "ownership[state]": -0.10},
        sd_city=0.25, sigma=0.80,
        load_firm=0.8, load_city=0.5, load_city_year=1.0,
    ),
    _Mediator(
        "m_transform", "firm", "intelligent / green transformation (index)",
        a=0.60, b=0.07, b_s=0.14, intercept=-3.00, gdp=0.20,
        region={"east": 0.10, "west": -0.10},
        firm={"size_ln": 0.15, "age_ln": -0.05, "leverage": -0.10,
              "ownership[private]": -0.05, "ownership[state]": 0.05},
        sd_city=0.30, sigma=0.90,
        load_firm=1.2, load_city=0.5, load_city_year=1.0,
    ),
    _Mediator(
        "m_spillover", "city", "knowledge spillover (index)",
        a=1.00, b=0.05, b_s=0.10, intercept=-3.50, gdp=0.30,
        region={"east": 0.20, "west": -0.20},
        firm={}, sd_city=0.40, sigma=0.50,
        load_city=1.0,
    ),
    _Mediator(
        "m_congestion", "city", "congestion relief (index); va raises it, it raises resilience",
        a=0.80, b=0.06, b_s=0.12, intercept=2.13, gdp=-0.20,
        region={"east": -0.10, "west": 0.10},
        firm={}, sd_city=0.40, sigma=0.40,
        load_city=0.5,
    ),
)

# --- outcomes --------------------------------------------------------------------------
_RES_DIRECT = 0.35
_RES_INTERCEPT = -0.72
_RES_CONTROLS = {
    "gdp_pc_ln": 0.05, "size_ln": 0.05, "age_ln": 0.04, "leverage": -0.30,
    "shock_exposure": -1.20,
    "region[east]": 0.05, "region[west]": -0.04,
    "ownership[private]": 0.0, "ownership[state]": -0.05,
}
_RES_SHOCK_YEAR = -0.25
_RES_YEAR_SD = 0.04
_RES_SD_CITY = 0.07
_RES_SIGMA = 0.60  # SD (not scale) of the Student-t residual

_SURV_DIRECT = 0.70
_SURV_INTERCEPT = 0.25
_SURV_CONTROLS = {
    "gdp_pc_ln": 0.10, "size_ln": 0.25, "age_ln": 0.20, "leverage": -0.80,
    "shock_exposure": -2.00,
    "region[east]": 0.10, "region[west]": -0.10,
    "ownership[private]": -0.10, "ownership[state]": 0.20,
}
_SURV_SHOCK_YEAR = -0.45
_SURV_YEAR_SD = 0.08
_SURV_SD_CITY = 0.30

# --- panel structure: firm quality, city quality, city-year shocks ---------------------
# Each latent is a standard normal scaled by its simulate_panel parameter (the *_sd
# arguments) times the equation's loading below (mediator loadings sit in _MEDIATORS).
FIRM_QUALITY_SD = 0.25  # default scale of the unobserved firm quality q_i
CITY_QUALITY_SD = 0.20  # default scale of the unobserved city quality g_c
CITY_YEAR_SD = 0.20  # default scale of the city-year shocks (= their SD on resilience)
_RES_LOAD = {"firm_quality": 1.0, "city_quality": 0.25, "city_year": 1.0}
_SURV_LOAD = {"firm_quality": 1.2, "city_quality": 1.0, "city_year": 1.5}
_FIRM_MEDIATORS = tuple(m.name for m in _MEDIATORS if m.level == "firm")
# order of the independent city-year shock fields drawn from the latent stream
_CITY_YEAR_EQUATIONS = (*_FIRM_MEDIATORS, "resilience", "survival")


@dataclass(frozen=True)
class _Latent:
    """The persistent and city-year latent components, realized and scaled.

    ``firm_quality`` (length ``n_firms``) and ``city_quality`` (length ``n_cities``) are
    standard normal; ``city_year[eq]`` (``n_cities x n_years``) is already multiplied by
    ``city_year_sd`` and the equation's loading.
    """

    firm_quality_sd: float
    city_quality_sd: float
    city_year_sd: float
    firm_quality: np.ndarray
    city_quality: np.ndarray
    city_year: dict[str, np.ndarray]


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(
            f"The '{name}' parameter of simulate_panel must be an int >= {minimum}. "
            f"Got {value!r} instead."
        )
    return int(value)


def _check_sd(name: str, value: Any) -> float:
    number = isinstance(value, int | float | np.integer | np.floating)
    if isinstance(value, bool) or not number or not np.isfinite(value) or value < 0:
        raise ValueError(
            f"The '{name}' parameter of simulate_panel must be a finite float >= 0. "
            f"Got {value!r} instead."
        )
    return float(value)


def _loadings() -> dict[str, dict[str, float]]:
    """Loadings of every equation on the three latent components (0 where absent)."""
    return {
        "firm_quality": {**{m.name: m.load_firm for m in _MEDIATORS},
                         "resilience": _RES_LOAD["firm_quality"],
                         "survival": _SURV_LOAD["firm_quality"]},
        "city_quality": {**{m.name: m.load_city for m in _MEDIATORS},
                         "resilience": _RES_LOAD["city_quality"],
                         "survival": _SURV_LOAD["city_quality"]},
        "city_year": {**{m.name: m.load_city_year for m in _MEDIATORS},
                      "resilience": _RES_LOAD["city_year"],
                      "survival": _SURV_LOAD["city_year"]},
    }


def _internet_share(year: np.ndarray) -> np.ndarray:
    """National internet users per person (a logistic curve near China's 2010-2020 path)."""
    return _expit(0.16 * (year - 2015.0))


def simulate_panel(
    n_firms: int = 20_000,
    n_years: int = 10,
    n_cities: int = 280,
    n_provinces: int = 30,
    *,
    first_year: int = 2011,
    seed: int = 0,
    effect_scale: float = 1.0,
    firm_quality_sd: float = FIRM_QUALITY_SD,
    city_quality_sd: float = CITY_QUALITY_SD,
    city_year_sd: float = CITY_YEAR_SD,
    heterogeneity: dict[str, dict[str, float]] | None = None,
    shock_design: dict[str, float] | None = None,
    confounded_iv: dict[str, float] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    r"""Simulate a firm-year panel of exporters with known causal effects of ``va``.

    Firms are nested in cities, cities in provinces, provinces in three regions. The
    panel is balanced: every firm appears in every year. The data follow the mechanism
    DAG of ``models/mechanisms.dot`` exactly, plus year effects (lower in shock years),
    an unobserved persistent firm quality that raises both the firm mediators and the
    outcomes (so the mechanism paths need firm effects), an unobserved city quality
    shared by the city effects of every equation, and city-year shocks.

    Parameters
    ----------
    n_firms : int, default 20_000
        Number of firms (rows = ``n_firms * n_years``).
    n_years : int, default 10
        Number of years.
    n_cities : int, default 280
        Number of cities; at least ``n_provinces``. While ``n_firms >= n_cities`` every
        city holds at least one firm.
    n_provinces : int, default 30
        Number of provinces; at least 3 (regions east, central, west are assigned to
        provinces in the proportions 11 : 8 : 12 of China's 31).
    first_year : int, default 2011
        Calendar year of the first period.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same seed gives identical data.
    effect_scale : float, default 1.0
        Multiplies every path out of ``va`` (the mediator slopes :math:`a_k` and the
        direct effects :math:`c`, :math:`c_s`), so all effects of ``va`` scale with it;
        ``0`` gives data in which ``va`` has no effect at all (a null test). The
        mediator-outcome slopes :math:`b_k` are not scaled.
    firm_quality_sd : float, default 0.25
        Scale :math:`\sigma_q` of the unobserved firm quality :math:`q_i \sim N(0, 1)`:
        it adds :math:`\sigma_q \ell^q_e q_i` to each firm mediator and outcome
        :math:`e` (the SD of that term on ``resilience``, whose loading is 1). ``0``
        switches it off.
    city_quality_sd : float, default 0.2
        Scale :math:`\sigma_g` of the unobserved city quality :math:`g_c \sim N(0, 1)`,
        added to the city effect of every equation with loading :math:`\ell^g_e`.
        ``0`` switches it off.
    city_year_sd : float, default 0.2
        SD of the city-year shocks on ``resilience`` and on each firm mediator
        (:math:`1.5\times` on the survival logit). ``0`` switches them off. With all
        three scales at ``0`` the data are exactly those of the generator without them.
    heterogeneity : dict, optional
        Effect heterogeneity by firm type or region, e.g. ``{"ownership": {"state":
        0.8}}``: the direct effect of ``va`` on resilience is larger by 0.8 (times
        ``effect_scale``) for state-owned firms, and on the survival logit by 0.8 x
        0.7 / 0.35 (the same ratio as the common direct effects). Keys ``"ownership"``
        (levels ``foreign, private, state``) and ``"region"`` (``central, east,
        west``); levels left out add 0. ``truth["heterogeneity"][column][level]`` holds
        the true ``resilience`` direct and total effects and the ``survival`` total
        effect (g-formula over that level's rows) at each level, and the overall truth
        includes the extra effects. None (the default) leaves the data unchanged.
    shock_design : dict, optional
        An export shock whose effect on ``resilience`` depends on the treatment measured
        before it, for the shock (event-study) design: ``{"year": 2018, "effect": 1.0,
        "pre_trend": 0.0}``. Each firm's exposure :math:`D_i` is ``va`` of its city in
        the year before the shock; ``resilience`` gains :math:`D_i\,(\mathrm{effect}
        \cdot 1[y \ge s] + \mathrm{pre\_trend} \cdot (y - (s - 1)))` in year
        :math:`y` (``pre_trend`` != 0: firms of high-``va`` cities already diverge
        before the shock, a violation of parallel trends). ``year`` must have a year
        before it in the panel; ``effect`` defaults to 1.0, ``pre_trend`` to 0.0. No
        random numbers are drawn, so every other value is unchanged.
        ``truth["shock_design"]`` holds ``year``, ``effect``, ``pre_trend``, the true
        event-time coefficients ``event[str(k)]`` relative to the year before the shock
        (:math:`\mathrm{pre\_trend}\,(k + 1) + \mathrm{effect}\cdot 1[k \ge 0]`,
        ``k = -1`` omitted) and their mean over ``k >= 0``, ``post_average``. With
        ``effect_scale`` != 0 the ordinary effect of ``va``'s own year-to-year changes
        also loads on the event-time terms a little (``va`` drifts differently in high-
        and low-``va`` cities); ``effect_scale=0`` isolates the shock's effect.
    confounded_iv : dict, optional
        A treatment confounded by a latent city-year factor, and the instrument's
        strength, for instrumental variables: ``{"confounding": 1.0, "strength": 1.0,
        "loading": 0.2}`` (the defaults of keys left out). A factor
        :math:`L_{ct} \sim N(0, 1)` (its own random stream: every other value is
        unchanged) enters ``va``'s logit with coefficient ``confounding`` and
        ``resilience`` with coefficient ``loading``, so a regression of resilience on
        ``va`` is biased upwards; ``strength`` multiplies the instrument's coefficient
        0.6 in ``va``'s logit (0.05 gives a weak instrument). The instrument is
        :math:`\ln \mathrm{tel1984}_c \times \mathrm{net}_{t-1}` (DOMAIN.md; with year
        effects this equals the centred term of the logit); ``truth["confounded_iv"]``
        holds the settings and ``internet_share_lag[str(year)]`` to build it. The true
        effects are unchanged (:math:`L` does not touch the mediators or survival).

    Returns
    -------
    data : pandas.DataFrame
        One row per firm-year, sorted by ``firm_id`` then ``year``, with columns
        ``firm_id, city_id, province_id, year, region, ownership, va, tel1984,
        gdp_pc_ln, size_ln, age_ln, leverage, exposure, shock, shock_exposure,
        m_cost, m_speed, m_supply, m_transform, m_spillover, m_congestion,
        resilience, survival``. Integers are int64, ``region`` and ``ownership`` strings.
    truth : dict
        JSON-serialisable true parameters and effects (see Notes); write it with
        :func:`truth_to_json`. Keys: ``seed, n_firms, n_years, n_cities, n_provinces,
        first_year, effect_scale, treatment, instrument, confounders_observed,
        shock_years``; ``resilience`` (``direct, indirect, total``, per-mediator
        ``mediators[m] = {level, a, b, indirect}``, ``intercept, sigma, df,
        controls, year_effects, city_effects``); ``survival`` (probability-scale
        ``total, direct, indirect, indirect:<m>, direct:control, direct:treated,
        indirect:control, indirect:treated`` and the ``logit`` coefficients);
        ``mediators[m]`` (``level, a, intercept, sigma, controls, city_effects``);
        ``calibration`` (va mean and SD, shock loss, share of it absorbed by +1 SD of
        va); ``panel_structure`` (``firm_quality_sd, city_quality_sd, city_year_sd``,
        ``loadings[latent][equation]`` for latent ``firm_quality, city_quality,
        city_year``, the realized ``firm_quality`` by ``firm_id`` and ``city_quality``
        by ``city_id``, and text notes ``latent, latent_city, city_year,
        independent_of``). Each equation (``resilience``, ``survival["logit"]``,
        ``mediators[m]``) also holds ``sd_city`` (SD of its whole city effect),
        ``sd_city_own``, ``sd_city_quality``, ``sd_firm`` (SD of its firm-quality
        term), ``sd_city_year`` and, for the outcomes and firm mediators, the realized
        ``city_year_effects[city_id][year]``. Categorical coefficients are named
        ``region[east]``, ``ownership[state]`` against the alphabetically first level
        (``central``, ``foreign``); year effects are keyed by year (first year 0), city
        effects by ``city_id``, firm quality by ``firm_id``, all as strings.

    Raises
    ------
    ValueError
        If a size argument is not a large enough int, ``effect_scale`` is not finite,
        or a latent scale (``firm_quality_sd``, ``city_quality_sd``, ``city_year_sd``)
        is not a finite number >= 0.

    Notes
    -----
    Indices: firm :math:`i`, city :math:`c` (province :math:`p`, region :math:`r`),
    year index :math:`t = 0, \dots, T-1`. :math:`U_c` (city development) is latent and
    not returned; the firm quality :math:`q_i`, the city quality :math:`g_c` and the
    city-year shocks are latent too (not columns of the data) but their realized values
    are in ``truth``. Normal draws are independent.

    City level:

    .. math::

        U_{ct} &= U_c + \kappa_c t, \quad U_c \sim N(0, 1),\ \kappa_c \sim N(0.04, 0.03^2) \\
        \ln \mathrm{tel1984}_c &\sim N(\ln 0.45,\ 0.55^2) \\
        \mathrm{gdp\_pc\_ln}_{ct} &= 10.55 + 0.45\,U_{ct} + 0.06\,t + \gamma_r
            + N(0, 0.04^2) \\
        \mathrm{va}_{ct} &= \operatorname{logit}^{-1}\big(-2.35 + 0.5\,U_{ct} + 0.07\,t
            + 0.6\,(\ln \mathrm{tel1984}_c - \ln 0.45)\, \mathrm{net}_{t-1} + \delta_r
            + N(0, 0.4^2)\big)

    with :math:`\mathrm{net}_{y} = \operatorname{logit}^{-1}(0.16 (y - 2015))` the
    national internet share of the year before, :math:`\gamma = (0, 0.35, -0.15)` and
    :math:`\delta = (0, 0.3, -0.2)` for (central, east, west). ``tel1984`` affects
    ``va`` only (the instrument); :math:`U` affects ``va`` and ``gdp_pc_ln`` only, so
    adjusting for ``gdp_pc_ln`` and ``region`` (and year) blocks every backdoor path.

    Firm level (fixed per firm unless indexed by :math:`t`): ownership (state 15 %,
    foreign 30 %, private 55 %), ``size_ln`` :math:`= s_i + 0.02 t + N(0, 0.1^2)`,
    ``age_ln`` :math:`= \ln(\mathrm{age}_{i0} + t)`, ``leverage`` (Beta(3, 4) plus
    year noise), ``exposure`` :math:`\sim` Beta(1.1, 4.5) (pre-shock US export share),
    ``shock`` :math:`= 1` in year indices 4, 7, 8, 9, ``shock_exposure`` = shock
    :math:`\times` exposure.

    Latent panel structure, all independent of each other and of every variable above
    (``va``, ``gdp_pc_ln``, ``tel1984``, region and the firm controls), so the effects
    of ``va`` are not confounded by them:

    .. math::

        q_i \sim N(0, 1)\ \text{(firm quality)}, \quad
        g_c \sim N(0, 1)\ \text{(city quality)}, \quad
        s^e_{ct} \sim N(0, (\sigma_s \ell^s_e)^2)\ \text{(city-year shock of equation } e)

    with scales :math:`\sigma_q` = ``firm_quality_sd``, :math:`\sigma_g` =
    ``city_quality_sd``, :math:`\sigma_s` = ``city_year_sd`` and loadings
    :math:`\ell_e` (``truth["panel_structure"]["loadings"]``):

    ========================  =====  =====  ======  =========  =====  =====  ====  ====
    loading                   cost   speed  supply  transform  spill  cong   res   surv
    ========================  =====  =====  ======  =========  =====  =====  ====  ====
    :math:`\ell^q` (firm)     -1.0   1.0    0.8     1.2        0      0      1.0   1.2
    :math:`\ell^g` (city)     -0.5   0.5    0.5     0.5        1.0    0.5    0.25  1.0
    :math:`\ell^s` (c-year)   1.0    1.0    1.0     1.0        0      0      1.0   1.5
    ========================  =====  =====  ======  =========  =====  =====  ====  ====

    Firm quality lowers operating cost and raises speed, supply-chain flexibility,
    transformation, resilience and survival: it is an unobserved common cause of the
    firm mediators and the outcomes. A regression of an outcome on the mediators
    without firm effects is therefore biased for the :math:`b_k` (away from 0 here;
    about :math:`\pm 0.06` against :math:`|b_k| \approx 0.1` at the defaults, so
    :math:`\sum_k a_k b_k` comes out about 50 % too large), while within-firm (firm
    fixed or random effects with the Mundlak means) slopes recover them; the total
    effect of ``va`` is unaffected (:math:`q_i` is independent of ``va``). City quality
    does the same at the city level (city effects absorb it) and makes the city
    effects of the equations correlated. The shocks :math:`s^e_{ct}` are drawn
    independently per equation: they are shared by the firms of a city-year but are
    noise, not confounders (a shock common to a mediator and an outcome could not be
    told apart from the mediator's effect without city-year effects). The city
    mediators get no firm or city-year term: their own noise :math:`\varepsilon_k` is
    already city-year.

    Mediators, :math:`k` = cost, speed, supply, transform (firm-year rows) and
    spillover, congestion (city-year rows, one value per city-year):

    .. math::

        M_{k} = \alpha_k + a_k\,\mathrm{va}_{ct} + g_k\,\mathrm{gdp\_pc\_ln}_{ct}
            + \rho_{kr} + x_{it}'\phi_k + v_{kc} + \sigma_q \ell^q_k q_i + s^k_{ct}
            + \varepsilon_k,
        \quad v_{kc} = v^0_{kc} + \sigma_g \ell^g_k g_c,\
        v^0_{kc} \sim N(0, \tau_k^2),\ \varepsilon_k \sim N(0, \sigma_k^2)

    with :math:`x_{it}` = (size_ln, age_ln, leverage, ownership) for firm mediators and
    empty for city mediators (for which :math:`\ell^q_k = 0` and :math:`s^k = 0`). The
    mediators are parallel (none affects another) and are indices of SD about 0.6-1.1
    centred near 0; a city mediator's city-year noise is small
    (:math:`|b_k| \sigma_k \le 0.03`) since a total-effect model with city random
    intercepts does not model city-year shocks. ``truth`` calls :math:`\tau_k`
    ``sd_city_own``, :math:`\sigma_g |\ell^g_k|` ``sd_city_quality`` and the SD of
    :math:`v_{kc}`, :math:`\sqrt{\tau_k^2 + \sigma_g^2 \ell^{g2}_k}`, ``sd_city``.

    Outcomes (:math:`C` the controls gdp_pc_ln, region, size_ln, age_ln, leverage,
    ownership; :math:`\lambda_t` year effects, lower in shock years):

    .. math::

        \mathrm{resilience}_{it} &= \alpha + c\,\mathrm{va}_{ct} + \sum_k b_k M_k
            + C'\beta + d\,\mathrm{shock\_exposure}_{it} + \lambda_t + u_c
            + \sigma_q \ell^q_y q_i + s^y_{ct} + \sigma \sqrt{3/5}\; \epsilon_{it},
            \quad u_c = u^0_c + \sigma_g \ell^g_y g_c,\ u^0_c \sim N(0, 0.07^2),\
            \epsilon_{it} \sim t_5 \\
        \Pr(\mathrm{survival}_{it} = 1) &= \operatorname{logit}^{-1}\big(\alpha_s
            + c_s\,\mathrm{va}_{ct} + \sum_k b_{sk} M_k + C'\beta_s
            + d_s\,\mathrm{shock\_exposure}_{it} + \lambda_{st} + w_c
            + \sigma_q \ell^q_s q_i + s^s_{ct}\big),
            \quad w_c = w^0_c + \sigma_g \ell^g_s g_c,\ w^0_c \sim N(0, 0.3^2)

    with :math:`\sigma = 0.6` the SD of the residual. At the defaults the firm-quality
    term has SD 0.25 on resilience (0.3 on the survival logit), the city-year shock 0.2
    (0.3), the city effect 0.086 (0.36). True values: see the returned ``truth``.

    For ``resilience`` (Gaussian-type, linear) the effects of one unit of ``va`` are
    ``direct`` :math:`= c`, ``indirect`` :math:`= \sum_k a_k b_k`, ``total`` their
    sum. For ``survival`` they are on the probability scale, by the g-formula over the
    simulated sample with the true equations: :math:`t = 0` is each unit's observed
    ``va`` and :math:`t = 1` that value plus one; :math:`M_k(1) = M_k + a_k`,
    :math:`M_k(0) = M_k` (realized noise, city effects, firm quality and city-year
    shocks kept: :math:`\eta` is the realized linear predictor);

    .. math::

        \mathrm{NIE}_k(t) &= \overline{F(\eta(t, M_k(1), M_{-k}(t)))
            - F(\eta(t, M_k(0), M_{-k}(t)))} \\
        \mathrm{NIE}(t) &= \overline{F(\eta(t, M(1))) - F(\eta(t, M(0)))},\quad
        \mathrm{NDE}(t) = \overline{F(\eta(1, M(t))) - F(\eta(0, M(t)))} \\
        \mathrm{TE} &= \overline{F(\eta(1, M(1))) - F(\eta(0, M(0)))}
            = \mathrm{NDE}(0) + \mathrm{NIE}(1)

    ``direct``, ``indirect`` and ``indirect:<m>`` hold the average of control
    (:math:`t = 0`) and treated (:math:`t = 1`); ``direct:control`` etc. the parts.

    Examples
    --------
    >>> from vagg_bayes.data import simulate_panel
    >>> data, truth = simulate_panel(n_firms=500, n_years=5, n_cities=40, seed=1)
    >>> data.shape
    (2500, 23)
    >>> round(truth["resilience"]["total"], 3)
    0.633
    """
    n_firms = _check_int("n_firms", n_firms, 1)
    n_years = _check_int("n_years", n_years, 1)
    n_provinces = _check_int("n_provinces", n_provinces, 3)
    n_cities = _check_int("n_cities", n_cities, n_provinces)
    first_year = _check_int("first_year", first_year, -10_000)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"The 'seed' parameter of simulate_panel must be an int. Got {seed!r}.")
    try:
        scale = float(effect_scale)
    except (TypeError, ValueError):
        scale = float("nan")
    if not np.isfinite(scale):
        raise ValueError(
            "The 'effect_scale' parameter of simulate_panel must be a finite number. "
            f"Got {effect_scale!r} instead."
        )
    fq_sd = _check_sd("firm_quality_sd", firm_quality_sd)
    cq_sd = _check_sd("city_quality_sd", city_quality_sd)
    cy_sd = _check_sd("city_year_sd", city_year_sd)
    heterogeneity = _check_heterogeneity(heterogeneity)
    shock_design = _check_shock_design(shock_design, first_year, n_years)
    confounded_iv = _check_confounded_iv(confounded_iv)

    rng = np.random.default_rng(seed)
    # The latent components come from their own stream (a child of the seed), drawn in a
    # fixed order whatever their scales: every other number is the same with or without
    # them, and switching one off leaves the others unchanged.
    latent_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    T, C, F = n_years, n_cities, n_firms
    t_grid = np.arange(T, dtype=float)
    years = first_year + np.arange(T)

    # ---- geography: provinces -> regions, cities -> provinces ------------------------
    n_east = max(1, round(n_provinces * 11 / 31))
    n_central = max(1, round(n_provinces * 8 / 31))
    prov_region = np.full(n_provinces, 2)  # index into ("central", "east", "west")
    prov_region[:n_east] = 1
    prov_region[n_east : n_east + n_central] = 0
    city_prov = np.sort(
        np.concatenate([np.arange(n_provinces), rng.integers(0, n_provinces, C - n_provinces)])
    )
    city_region = prov_region[city_prov]
    region_names = np.array(REGIONS)

    def by_region(coefs: dict[str, float]) -> np.ndarray:
        return np.array([coefs.get(r, 0.0) for r in REGIONS])[city_region]

    # ---- city-year: latent development, instrument, GDP, va --------------------------
    dev = rng.normal(0.0, 1.0, C)
    dev_trend = rng.normal(_DEV_TREND_MEAN, _DEV_TREND_SD, C)
    dev_ct = dev[:, None] + dev_trend[:, None] * t_grid[None, :]
    tel = np.exp(rng.normal(_TEL_LOG_MEAN, _TEL_LOG_SD, C))
    net_lag = _internet_share(years - 1.0)
    gdp = (
        _GDP_INTERCEPT + _GDP_DEV * dev_ct + _GDP_TREND * t_grid[None, :]
        + by_region(_GDP_REGION)[:, None] + rng.normal(0.0, _GDP_NOISE, (C, T))
    )
    va_logit = (
        _VA_INTERCEPT + _VA_DEV * dev_ct + _VA_TREND * t_grid[None, :]
        + _VA_INSTRUMENT * (1.0 if confounded_iv is None else confounded_iv["strength"])
        * (np.log(tel) - _TEL_LOG_MEAN)[:, None] * net_lag[None, :]
        + by_region(_VA_REGION)[:, None] + rng.normal(0.0, _VA_NOISE, (C, T))
    )
    confounder = None
    if confounded_iv is not None:  # latent city-year factor of va and resilience
        confounder = np.random.default_rng(
            np.random.SeedSequence(seed, spawn_key=(0x1F,))).standard_normal((C, T))
        va_logit = va_logit + confounded_iv["confounding"] * confounder
    va = _expit(va_logit)

    # ---- latent panel structure: firm quality, city quality, city-year shocks --------
    loadings = _loadings()
    latent = _Latent(
        firm_quality_sd=fq_sd,
        city_quality_sd=cq_sd,
        city_year_sd=cy_sd,
        firm_quality=latent_rng.standard_normal(F),
        city_quality=latent_rng.standard_normal(C),
        city_year={
            eq: cy_sd * loadings["city_year"][eq] * latent_rng.standard_normal((C, T))
            for eq in _CITY_YEAR_EQUATIONS
        },
    )

    def city_effect(eq: str, own_sd: float) -> np.ndarray:
        """An equation's city effect: its own draw plus its share of city quality."""
        own = rng.normal(0.0, own_sd, C)
        return own + cq_sd * loadings["city_quality"][eq] * latent.city_quality

    # ---- firms: city, ownership, controls --------------------------------------------
    weight = rng.lognormal(0.0, 0.8, C) * np.array([1.0, 2.0, 0.6])[city_region]
    n_seed = C if F >= C else 0
    firm_city = np.concatenate(
        [np.arange(n_seed), rng.choice(C, F - n_seed, p=weight / weight.sum())]
    )
    firm_city = firm_city[rng.permutation(F)]
    owner = rng.choice(3, F, p=[0.30, 0.55, 0.15])  # foreign, private, state
    size0 = rng.normal(4.9, 1.0, F) + 0.6 * (owner == 2) + 0.2 * (owner == 0)
    age0 = 1.0 + rng.gamma(2.0, 4.0, F)
    lev0 = rng.beta(3.0, 4.0, F)
    exposure = rng.beta(1.1, 4.5, F)

    firm = np.repeat(np.arange(F), T)
    tt = np.tile(np.arange(T), F)
    city = firm_city[firm]
    n = F * T
    size_ln = size0[firm] + 0.02 * tt + rng.normal(0.0, 0.10, n)
    age_ln = np.log(age0[firm] + tt)
    leverage = np.clip(lev0[firm] + rng.normal(0.0, 0.05, n), 0.01, 0.99)
    shock_years = [i for i in SHOCK_YEAR_INDEX if i < T]
    shock_t = np.isin(np.arange(T), shock_years).astype(np.int64)
    shock = shock_t[tt]
    shock_exposure = shock * exposure[firm]
    own_row = owner[firm]
    region_row = city_region[city]
    va_row = va[city, tt]
    gdp_row = gdp[city, tt]

    firm_x = {
        "size_ln": size_ln,
        "age_ln": age_ln,
        "leverage": leverage,
        "ownership[private]": (own_row == 1).astype(float),
        "ownership[state]": (own_row == 2).astype(float),
    }

    def firm_effect(eq: str) -> np.ndarray:
        """An equation's firm-quality term, per row."""
        return (fq_sd * loadings["firm_quality"][eq] * latent.firm_quality)[firm]

    # ---- mediators -------------------------------------------------------------------
    mediators: dict[str, np.ndarray] = {}
    med_city: dict[str, np.ndarray] = {}
    for m in _MEDIATORS:
        a = scale * m.a
        u = med_city[m.name] = city_effect(m.name, m.sd_city)
        if m.level == "city":
            val = (
                m.intercept + a * va + m.gdp * gdp + by_region(m.region)[:, None]
                + u[:, None] + rng.normal(0.0, m.sigma, (C, T))
            )
            mediators[m.name] = val[city, tt]
        else:
            val = (
                m.intercept + a * va_row + m.gdp * gdp_row + by_region(m.region)[city]
                + u[city] + rng.normal(0.0, m.sigma, n)
                + firm_effect(m.name) + latent.city_year[m.name][city, tt]
            )
            for name, coef in m.firm.items():
                val += coef * firm_x[name]
            mediators[m.name] = val

    # ---- outcomes --------------------------------------------------------------------
    controls_x = {
        "gdp_pc_ln": gdp_row,
        "shock_exposure": shock_exposure,
        "region[east]": (region_row == 1).astype(float),
        "region[west]": (region_row == 2).astype(float),
        **firm_x,
    }

    def year_effects(sd: float, shock_shift: float) -> np.ndarray:
        eff = rng.normal(0.0, sd, T) + shock_shift * shock_t
        return eff - eff[0]

    res_year = year_effects(_RES_YEAR_SD, _RES_SHOCK_YEAR)
    res_city = city_effect("resilience", _RES_SD_CITY)
    c = scale * _RES_DIRECT
    resilience = (
        _RES_INTERCEPT + c * va_row + res_year[tt] + res_city[city]
        + firm_effect("resilience") + latent.city_year["resilience"][city, tt]
    )
    for m in _MEDIATORS:
        resilience += m.b * mediators[m.name]
    for name, coef in _RES_CONTROLS.items():
        resilience += coef * controls_x[name]
    resilience += _RES_SIGMA * np.sqrt((T_DF - 2.0) / T_DF) * rng.standard_t(T_DF, n)
    level_of = {"ownership": np.array(OWNERSHIPS)[own_row],
                "region": region_names[region_row]}
    extra = None
    if heterogeneity:
        extra = np.zeros(n)
        for col, effects in heterogeneity.items():
            for level, value in effects.items():
                extra += scale * value * (level_of[col] == level)
        resilience += extra * va_row
    if shock_design is not None:  # the shock design: effect by pre-shock va (no draws)
        resilience += _shock_term(shock_design, va, city, tt, first_year)
    if confounder is not None:
        resilience += confounded_iv["loading"] * confounder[city, tt]

    surv_year = year_effects(_SURV_YEAR_SD, _SURV_SHOCK_YEAR)
    surv_city = city_effect("survival", _SURV_SD_CITY)
    c_s = scale * _SURV_DIRECT
    eta = (
        _SURV_INTERCEPT + c_s * va_row + surv_year[tt] + surv_city[city]
        + firm_effect("survival") + latent.city_year["survival"][city, tt]
    )
    for m in _MEDIATORS:
        eta += m.b_s * mediators[m.name]
    for name, coef in _SURV_CONTROLS.items():
        eta += coef * controls_x[name]
    if extra is not None:
        eta += extra * (_SURV_DIRECT / _RES_DIRECT) * va_row
    survival = (rng.random(n) < _expit(eta)).astype(np.int64)

    data = pd.DataFrame(
        {
            "firm_id": firm.astype(np.int64),
            "city_id": city.astype(np.int64),
            "province_id": city_prov[city].astype(np.int64),
            "year": (first_year + tt).astype(np.int64),
            "region": region_names[region_row],
            "ownership": np.array(OWNERSHIPS)[own_row],
            "va": va_row,
            "tel1984": tel[city],
            "gdp_pc_ln": gdp_row,
            "size_ln": size_ln,
            "age_ln": age_ln,
            "leverage": leverage,
            "exposure": exposure[firm],
            "shock": shock,
            "shock_exposure": shock_exposure,
            **mediators,
            "resilience": resilience,
            "survival": survival,
        }
    )

    truth = _truth(
        scale=scale, eta=eta, years=years, res_year=res_year, surv_year=surv_year,
        res_city=res_city, surv_city=surv_city, med_city=med_city, shock_t=shock_t,
        va=va, data=data, latent=latent,
        c_s_rows=None if extra is None else c_s + extra * (_SURV_DIRECT / _RES_DIRECT),
    )
    if extra is not None:  # the sample-average direct effect includes the extra effects
        truth["resilience"]["direct"] += float(np.mean(extra))
        truth["resilience"]["total"] += float(np.mean(extra))
        truth["heterogeneity"] = _heterogeneity_truth(truth, heterogeneity, level_of,
                                                      extra, eta)
    truth.update(
        seed=int(seed), n_firms=F, n_years=T, n_cities=C, n_provinces=n_provinces,
        first_year=first_year,
    )
    if shock_design is not None:
        truth["shock_design"] = _shock_truth(shock_design, years)
    if confounded_iv is not None:
        truth["confounded_iv"] = {
            **confounded_iv,
            "instrument": "ln(tel1984) x national internet share of the year before",
            "internet_share_lag": {str(int(y)): float(v) for y, v in zip(years, net_lag)},
        }
    return data, truth


def _check_shock_design(value: Any, first_year: int, n_years: int) -> dict | None:
    """Validate ``simulate_panel(shock_design=...)``; None or {} -> None."""
    if not value:
        return None
    if not isinstance(value, dict) or "year" not in value or \
            set(value) - {"year", "effect", "pre_trend"}:
        raise ValueError("The 'shock_design' parameter of simulate_panel must be a dict "
                         "with 'year' and optionally 'effect' and 'pre_trend', such as "
                         f"{{'year': 2018, 'effect': 1.0}}. Got {value!r} instead.")
    year = value["year"]
    if isinstance(year, bool) or not isinstance(year, int | np.integer) or \
            not first_year < year < first_year + n_years:
        raise ValueError(
            f"shock_design['year'] must be an int year of the panel after its first year "
            f"(between {first_year + 1} and {first_year + n_years - 1}); got {year!r}.")
    return {"year": int(year),
            **_finite_numbers("shock_design", value, {"effect": 1.0, "pre_trend": 0.0})}


def _finite_numbers(parameter: str, value: dict, defaults: dict) -> dict[str, float]:
    """``value``'s entries for the keys of ``defaults`` (the default where missing), each
    checked to be a finite number (a bool is not one)."""
    out = {}
    for key, default in defaults.items():
        number = value.get(key, default)
        if isinstance(number, bool) or not isinstance(number, int | float) or \
                not np.isfinite(number):
            raise ValueError(f"{parameter}[{key!r}] must be a finite number; got {number!r}.")
        out[key] = float(number)
    return out


def _shock_term(design: dict, va: np.ndarray, city: np.ndarray, tt: np.ndarray,
                first_year: int) -> np.ndarray:
    """Per row: D_i (effect 1[y >= s] + pre_trend (y - (s - 1))), D_i = va in s - 1."""
    s = design["year"] - first_year  # index of the shock year
    exposure = va[city, s - 1]
    k = tt - s  # event time
    return exposure * (design["effect"] * (k >= 0) + design["pre_trend"] * (k + 1))


def _shock_truth(design: dict, years: np.ndarray) -> dict[str, Any]:
    """Return the true event-time coefficients (reference: the year before the shock)."""
    ks = [int(y) - design["year"] for y in years if int(y) - design["year"] != -1]
    event = {str(k): design["pre_trend"] * (k + 1) + design["effect"] * (k >= 0) for k in ks}
    post = [event[str(k)] for k in ks if k >= 0]
    return {**design, "reference_year": design["year"] - 1,
            "exposure": "va of the firm's city in the year before the shock",
            "event": event, "post_average": float(np.mean(post))}


def _check_confounded_iv(value: Any) -> dict | None:
    """Validate ``simulate_panel(confounded_iv=...)``; None -> None, {} -> the defaults."""
    if value is None:
        return None
    defaults = {"confounding": 1.0, "strength": 1.0, "loading": 0.2}
    if not isinstance(value, dict) or set(value) - set(defaults):
        raise ValueError("The 'confounded_iv' parameter of simulate_panel must be a dict with "
                         "keys among 'confounding', 'strength', 'loading', such as "
                         f"{{'confounding': 1.0, 'strength': 0.05}}. Got {value!r} instead.")
    return _finite_numbers("confounded_iv", value, defaults)


_HETEROGENEITY_LEVELS = {"ownership": OWNERSHIPS, "region": REGIONS}


def _check_heterogeneity(value: Any) -> dict[str, dict[str, float]] | None:
    """Validate ``simulate_panel(heterogeneity=...)``; None or {} -> None."""
    if not value:
        return None
    if not isinstance(value, dict):
        raise ValueError("The 'heterogeneity' parameter of simulate_panel must be a dict "
                         f"such as {{'ownership': {{'state': 0.8}}}}. Got {value!r} instead.")
    out = {}
    for col, effects in value.items():
        if col not in _HETEROGENEITY_LEVELS or not isinstance(effects, dict):
            raise ValueError(
                f"heterogeneity keys must be one of {', '.join(_HETEROGENEITY_LEVELS)} "
                f"with a dict of level -> extra effect; got {col!r}: {effects!r}.")
        for level, extra in effects.items():
            if level not in _HETEROGENEITY_LEVELS[col] or isinstance(extra, bool) or \
                    not isinstance(extra, int | float) or not np.isfinite(extra):
                raise ValueError(
                    f"heterogeneity[{col!r}] needs levels among "
                    f"{', '.join(_HETEROGENEITY_LEVELS[col])} with finite numbers; got "
                    f"{level!r}: {extra!r}.")
        out[col] = {str(k): float(v) for k, v in effects.items()}
    return out


def _heterogeneity_truth(truth: dict, heterogeneity: dict, level_of: dict,
                         extra: np.ndarray, eta: np.ndarray) -> dict:
    """Compute the true effects of one unit of va at every level of each column."""
    res = truth["resilience"]
    c, indirect = res["direct"] - float(np.mean(extra)), res["indirect"]
    logit = truth["survival"]["logit"]
    shift = sum(logit["a_times_b"].values())
    c_s_rows = logit["direct"] + extra * (_SURV_DIRECT / _RES_DIRECT)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for col in heterogeneity:
        out[col] = {}
        for level in _HETEROGENEITY_LEVELS[col]:
            rows = level_of[col] == level
            if not rows.any():
                continue
            direct = c + float(np.mean(extra[rows]))
            surv = float(np.mean(_expit(eta[rows] + c_s_rows[rows] + shift))
                         - np.mean(_expit(eta[rows])))
            out[col][level] = {"resilience_direct": direct,
                               "resilience_total": direct + indirect,
                               "survival_total": surv}
    return out


def _truth(
    *,
    scale: float,
    eta: np.ndarray,
    years: np.ndarray,
    res_year: np.ndarray,
    surv_year: np.ndarray,
    res_city: np.ndarray,
    surv_city: np.ndarray,
    med_city: dict[str, np.ndarray],
    shock_t: np.ndarray,
    va: np.ndarray,
    data: pd.DataFrame,
    latent: _Latent,
    c_s_rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """Assemble the JSON-serialisable truth, including the survival g-formula effects."""
    a = {m.name: scale * m.a for m in _MEDIATORS}
    c = scale * _RES_DIRECT
    c_s = scale * _SURV_DIRECT
    indirect = {m.name: a[m.name] * m.b for m in _MEDIATORS}
    ind_sum = float(sum(indirect.values()))

    def year_dict(eff: np.ndarray) -> dict[str, float]:
        return {str(int(y)): float(e) for y, e in zip(years, eff, strict=True)}

    def city_dict(eff: np.ndarray) -> dict[str, float]:
        return {str(j): float(e) for j, e in enumerate(eff)}

    def city_year_dict(eff: np.ndarray) -> dict[str, dict[str, float]]:
        return {str(j): year_dict(row) for j, row in enumerate(eff)}

    loadings = _loadings()

    def structure(eq: str, sd_own: float) -> dict[str, Any]:
        """SDs of an equation's latent parts; ``sd_city`` is that of its whole city effect."""
        sd_cq = abs(loadings["city_quality"][eq]) * latent.city_quality_sd
        out: dict[str, Any] = {
            "sd_city": float(np.hypot(sd_own, sd_cq)),
            "sd_city_own": float(sd_own),
            "sd_city_quality": float(sd_cq),
            "sd_firm": float(abs(loadings["firm_quality"][eq]) * latent.firm_quality_sd),
            "sd_city_year": float(abs(loadings["city_year"][eq]) * latent.city_year_sd),
        }
        if eq in latent.city_year:
            out["city_year_effects"] = city_year_dict(latent.city_year[eq])
        return out

    resilience = {
        "family": "gaussian",
        "direct": float(c),
        "indirect": ind_sum,
        "total": float(c + ind_sum),
        "mediators": {
            m.name: {"level": m.level, "a": float(a[m.name]), "b": float(m.b),
                     "indirect": float(indirect[m.name])}
            for m in _MEDIATORS
        },
        "intercept": _RES_INTERCEPT,
        **structure("resilience", _RES_SD_CITY),
        "sigma": _RES_SIGMA,
        "df": T_DF,
        "controls": dict(_RES_CONTROLS),
        "year_effects": year_dict(res_year),
        "city_effects": city_dict(res_city),
    }

    # survival: g-formula on the probability scale over the simulated sample.
    # eta(t, shifts) = eta_obs + c_s * t + sum_k b_sk * a_k * t_k  (the model is linear in
    # va and the mediators, and the potential mediators are shifts of the observed ones).
    shift = {m.name: m.b_s * a[m.name] for m in _MEDIATORS}
    total_shift = sum(shift.values())

    def mean_p(offset: float | np.ndarray) -> float:
        return float(np.mean(_expit(eta + offset)))

    # with heterogeneity each row has its own direct effect (the same expressions)
    c_t = c_s if c_s_rows is None else c_s_rows
    p00 = mean_p(0.0)
    p11 = mean_p(c_t + total_shift)
    survival: dict[str, Any] = {"family": "bernoulli", "total": p11 - p00}
    nde = {0: mean_p(c_t) - p00, 1: p11 - mean_p(total_shift)}
    nie = {0: mean_p(total_shift) - p00, 1: p11 - mean_p(c_t)}
    for t, label in ((0, "control"), (1, "treated")):
        survival[f"direct:{label}"] = nde[t]
        survival[f"indirect:{label}"] = nie[t]
    survival["direct"] = 0.5 * (nde[0] + nde[1])
    survival["indirect"] = 0.5 * (nie[0] + nie[1])
    for m in _MEDIATORS:
        per_t = []
        for t in (0, 1):
            base = c_t * t + (total_shift - shift[m.name]) * t
            per_t.append(mean_p(base + shift[m.name]) - mean_p(base))
        survival[f"indirect:{m.name}"] = 0.5 * (per_t[0] + per_t[1])
    survival["logit"] = {
        "direct": float(c_s),
        "b": {m.name: float(m.b_s) for m in _MEDIATORS},
        "a_times_b": {m.name: float(shift[m.name]) for m in _MEDIATORS},
        "intercept": _SURV_INTERCEPT,
        **structure("survival", _SURV_SD_CITY),
        "controls": dict(_SURV_CONTROLS),
        "year_effects": year_dict(surv_year),
        "city_effects": city_dict(surv_city),
    }

    mediators = {
        m.name: {
            "level": m.level,
            "description": m.description,
            "a": float(a[m.name]),
            "intercept": m.intercept,
            **structure(m.name, m.sd_city),
            "sigma": m.sigma,
            "controls": {"gdp_pc_ln": m.gdp,
                         **{f"region[{r}]": v for r, v in m.region.items()},
                         **m.firm},
            "city_effects": city_dict(med_city[m.name]),
        }
        for m in _MEDIATORS
    }

    # calibration summary: how much of a shock's average loss +1 SD of va absorbs
    res_shock_loss = float(-(
        np.mean(res_year[shock_t == 1])
        + _RES_CONTROLS["shock_exposure"] * data["exposure"].mean()
    )) if shock_t.any() else 0.0
    va_sd = float(np.std(va))
    calibration = {
        "va_mean": float(np.mean(va)),
        "va_sd": va_sd,
        "resilience_shock_loss": res_shock_loss,
        "resilience_total_per_sd": float((c + ind_sum) * va_sd),
        "share_of_shock_loss_absorbed_per_sd": (
            float((c + ind_sum) * va_sd / res_shock_loss) if res_shock_loss else 0.0
        ),
        "share_indirect": float(ind_sum / (c + ind_sum)) if c + ind_sum else 0.0,
    }

    panel_structure = {
        "firm_quality_sd": latent.firm_quality_sd,
        "city_quality_sd": latent.city_quality_sd,
        "city_year_sd": latent.city_year_sd,
        "loadings": loadings,
        "latent": "firm_quality (unit-level, unobserved): raises mediators and outcomes",
        "latent_city": "city_quality (city-level, unobserved): shared part of the city "
                       "effects of every equation",
        "city_year": "independent N(0, 1) shocks per equation (firm mediators and "
                     "outcomes), shared by the firms of a city-year: noise, not confounders",
        "independent_of": ["va", "gdp_pc_ln", "region", "tel1984", "firm controls"],
        "firm_quality": {str(i): float(v) for i, v in enumerate(latent.firm_quality)},
        "city_quality": city_dict(latent.city_quality),
    }

    return {
        "treatment": "va",
        "instrument": "tel1984",
        "confounders_observed": ["gdp_pc_ln", "region"],
        "latent": "city development U (drives va and gdp_pc_ln only)",
        "effect_scale": float(scale),
        "shock_years": [int(y) for y in years[shock_t == 1]],
        "effect_unit": "one unit of va (va in [0, 1]; multiply by va_sd for +1 SD)",
        "resilience": resilience,
        "survival": {k: (float(v) if isinstance(v, float | np.floating) else v)
                     for k, v in survival.items()},
        "mediators": mediators,
        "calibration": calibration,
        "panel_structure": panel_structure,
    }


def truth_to_json(truth: dict[str, Any]) -> str:
    """Serialise a truth dictionary from :func:`simulate_panel` (sorted keys, indent 2).

    Parameters
    ----------
    truth : dict
        The second value returned by :func:`simulate_panel`.

    Returns
    -------
    str
        JSON text.
    """
    return json.dumps(truth, sort_keys=True, indent=2)

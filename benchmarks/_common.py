"""Shared helpers of the benchmarks: synthetic data with neutral names, timed subprocesses.

Not part of the package; run the scripts from the repository root with the project's
Python (``.venv/bin/python benchmarks/bench_vs_bambi.py``).
"""

from __future__ import annotations

import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SPEC_TEMPLATE = """\
[data]
group = "grp"

[variables]
outcome   = "y"
treatment = "x"
controls  = ["z1", "z2"]

[model]
family        = "{family}"
varying_slope = true
"""


KINDS = {
    # name: (generator, keyword arguments)
    "informative": ("simple", {"noise_sd": 0.2, "group_sd": (1.0, 0.5)}),
    "weak": ("simple", {"noise_sd": 1.0, "group_sd": (0.5, 0.25)}),
    "panel": ("panel", {}),
}
"""Data sets of the benchmarks. ``informative``: each group's rows pin down its own
intercept and slope (residual SD 0.2 against group SDs 1 and 0.5, ~70 rows a group):
the case in which the plain non-centred model (Bambi's default) fails to mix, as in the
issue's reference run. ``weak``: noisier rows, smaller group SDs, easy for every
sampler. ``panel``: the package's simulated firm-year panel, renamed."""


def make_case_data(rows: int, groups: int, kind: str = "informative", *,
                   family: str = "gaussian", seed: int = 1) -> pd.DataFrame:
    """Data of one of :data:`KINDS`."""
    generator, kwargs = KINDS[kind]
    return make_data(rows, groups, family=family, seed=seed, kind=generator, **kwargs)


def make_data(rows: int, groups: int, *, family: str = "gaussian", seed: int = 1,
              kind: str = "panel", noise_sd: float = 1.0,
              group_sd: tuple[float, float] = (0.5, 0.25)) -> pd.DataFrame:
    """Data with neutral column names ``y, x, z1, z2, grp``.

    ``kind="panel"`` (default): the package's synthetic firm-year panel
    (:func:`vagg_bayes.data.simulate_panel`, ``rows / 10`` firms over 10 years in
    ``groups`` cities), renamed: ``y`` = resilience (gaussian) or export survival
    (bernoulli), ``x`` = the city-year treatment ``va``, ``z1`` = firm size,
    ``z2`` = log GDP per head of the city, ``grp`` = city. The treatment varies within
    cities (over years) but mostly between them, and the true slope does not vary by
    city: the geometry that makes the plain hierarchical model mix slowly.

    ``kind="simple"``: y = 1 + (0.5 + u1_j) x + u0_j + 0.3 z1 - 0.2 z2 + e with a
    standard-normal treatment that varies mostly within groups, group SDs
    ``group_sd`` (correlation 0.3), residual SD ``noise_sd`` and unequal group sizes.
    The smaller ``noise_sd`` against ``group_sd``, the more each group's data pin down
    its own effects, and the worse the non-centred parameterisation mixes.
    """
    if kind == "panel":
        from vagg_bayes.data.simulate import simulate_panel

        n_years = 10
        panel, _ = simulate_panel(n_firms=max(rows // n_years, groups), n_years=n_years,
                                  n_cities=groups, seed=seed)
        outcome = "resilience" if family == "gaussian" else "survival"
        out = panel[[outcome, "va", "size_ln", "gdp_pc_ln", "city_id"]]
        out.columns = ["y", "x", "z1", "z2", "grp"]
        out = out.assign(grp=np.char.add("c", out["grp"].to_numpy().astype(str)))
        return out.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    weights = rng.gamma(2.0, 1.0, groups)
    grp = rng.choice(groups, rows, p=weights / weights.sum())
    grp[:groups] = np.arange(groups)  # every group present
    x = rng.normal(size=rows) + 0.5 * rng.normal(size=groups)[grp]
    z1 = rng.normal(size=rows)
    z2 = rng.normal(size=rows) + 0.3 * x
    s0, s1 = group_sd
    L = np.linalg.cholesky(np.array([[s0**2, 0.3 * s0 * s1], [0.3 * s0 * s1, s1**2]]))
    u = rng.normal(size=(groups, 2)) @ L.T
    if family == "gaussian":
        eta = 1.0 + (0.5 + u[grp, 1]) * x + u[grp, 0] + 0.3 * z1 - 0.2 * z2
        y = eta + noise_sd * rng.normal(size=rows)
    else:
        eta = -0.5 + (0.5 + u[grp, 1]) * x + u[grp, 0] + 0.3 * z1 - 0.2 * z2
        y = (rng.random(rows) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "z1": z1, "z2": z2,
                         "grp": np.char.add("g", grp.astype(str))})


def write_case(folder: Path, rows: int, groups: int, kind: str = "informative", *,
               family: str = "gaussian", seed: int = 1) -> tuple[Path, Path]:
    """Write ``data.csv`` and ``spec.toml`` (data of :data:`KINDS`) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.csv"
    spec = folder / "spec.toml"
    make_case_data(rows, groups, kind, family=family, seed=seed).to_csv(data, index=False)
    spec.write_text(SPEC_TEMPLATE.format(family=family))
    return data, spec


@dataclass
class Timed:
    """A finished subprocess: wall seconds, peak resident memory (MiB), output."""

    wall: float
    peak_mib: float
    returncode: int
    stdout: str
    stderr: str


_TIME_V = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)


def run_timed(cmd: list[str], *, env: dict | None = None, timeout: float | None = None) -> Timed:
    """Run ``cmd``; time it whole and read its peak RSS (``/usr/bin/time -v`` when present)."""
    full = [_TIME_V, "-v", *cmd] if _TIME_V else list(cmd)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - start
    peak = None
    if _TIME_V:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        if m:
            peak = int(m.group(1)) / 1024
    if peak is None:  # RUSAGE_CHILDREN is the max over all children so far: a lower bound
        peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return Timed(wall, peak, proc.returncode, proc.stdout, proc.stderr)


def vagg_command() -> list[str]:
    """The ``vagg-bayes`` command of this Python environment."""
    exe = Path(sys.executable).with_name("vagg-bayes")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "vagg_bayes.cli"]


def treatment_row(out: Path, treatment: str = "x") -> dict:
    """ESS_bulk and r_hat of the total effect (effects.csv) and the model's worst r_hat."""
    import json

    eff = pd.read_csv(out / "effects.csv").set_index("effect").loc["total"]
    coef = pd.read_csv(out / "coefficients.csv").set_index("term").loc[treatment]
    diag = json.loads((out / "diagnostics.json").read_text())
    return {"mean": float(eff["mean"]), "sd": float(eff["sd"]),
            "ess_bulk": float(eff["ess_bulk"]), "r_hat": float(eff["r_hat"]),
            "coef_ess_bulk": float(coef["ess_bulk"]), "coef_r_hat": float(coef["r_hat"]),
            "max_r_hat": diag.get("max_r_hat"), "min_ess_bulk": diag.get("min_ess_bulk"),
            "divergences": diag.get("divergences")}


def machine() -> str:
    """One line describing this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"

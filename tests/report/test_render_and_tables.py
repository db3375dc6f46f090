"""Summary rows from draws, and their renderings (milliseconds)."""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.report import render
from vagg_bayes.report.io import write_csv, write_json
from vagg_bayes.report.tables import COLUMNS, summarize_draws


def test_summary_of_known_normal_draws():
    rng = np.random.default_rng(0)
    draws = {"total": rng.normal(1.0, 0.5, size=(4, 5000))}
    row = summarize_draws(draws, "effect").iloc[0]
    assert list(summarize_draws(draws, "effect").columns) == ["effect", *COLUMNS]
    assert row["mean"] == pytest.approx(1.0, abs=0.02)
    assert row["sd"] == pytest.approx(0.5, abs=0.02)
    assert row.hdi_low == pytest.approx(1 - 1.881 * 0.5, abs=0.04)
    assert row.hdi_high == pytest.approx(1 + 1.881 * 0.5, abs=0.04)
    assert row.prob_positive == pytest.approx(0.977, abs=0.01)
    assert row.r_hat < 1.01 and row.ess_bulk > 10000


def test_constant_draws_do_not_crash():
    row = summarize_draws({"zero": np.zeros((2, 10))}, "term").iloc[0]
    assert row["mean"] == 0 and row.hdi_low == 0 and np.isnan(row.r_hat)


def test_renderings_share_the_frame():
    frame = pd.DataFrame({"term": ["educ[some college]", "x_1"], "mean": [0.12345, -1.0]})
    md = render.to_markdown(frame)
    assert "| educ[some college] | 0.123 |" in md and "---:" in md
    tex = render.to_latex(frame, caption="50% of y")
    assert r"x\_1" in tex and r"50\% of y" in tex and r"\toprule" in tex
    assert "<td>-1.000</td>" in render.to_html(frame)


def test_atomic_writers_leave_no_temporary_files(tmp_path):
    write_csv(tmp_path / "a.csv", pd.DataFrame({"x": [1.5]}))
    write_json(tmp_path / "a.json", {"v": float("nan"), "w": np.float64(2.0)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.json"]
    assert (tmp_path / "a.json").read_text().startswith('{\n  "v": null')


def test_failed_write_keeps_old_file(tmp_path):
    from vagg_bayes.report.io import write_atomic

    target = tmp_path / "t.csv"
    target.write_text("old")

    def boom(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, boom)
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1

"""DataFrame -> Markdown, LaTeX and HTML text (no extra dependencies).

May import: numpy, pandas.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd


def _fmt(value: object, digits: int) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(value)
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return ""
        return f"{value:.{digits}f}"
    return str(value)


def _cells(frame: pd.DataFrame, digits: int) -> list[list[str]]:
    return [[_fmt(v, digits) for v in row] for row in frame.itertuples(index=False)]


def to_markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    rule = "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"
    body = ["| " + " | ".join(row) + " |" for row in _cells(frame, digits)]
    return "\n".join([head, rule, *body]) + "\n"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(frame: pd.DataFrame, digits: int = 3, caption: str | None = None) -> str:
    """A booktabs LaTeX table."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    align = "".join("r" if n else "l" for n in numeric)
    lines = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        lines.append(r"\caption{" + _latex_escape(caption) + "}")
    lines += [r"\begin{tabular}{" + align + "}", r"\toprule",
              " & ".join(_latex_escape(str(c)) for c in frame.columns) + r" \\", r"\midrule"]
    for row in _cells(frame, digits):
        lines.append(" & ".join(_latex_escape(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(frame: pd.DataFrame, digits: int = 3) -> str:
    """A plain HTML table."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in _cells(frame, digits)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

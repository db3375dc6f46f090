"""Atomic file writing: write to a temporary name in the same folder, then rename.

A crash never leaves a half-written table behind.

May import: the standard library, pandas.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write text atomically (UTF-8)."""
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: object) -> Path:
    """Write JSON atomically (sorted keys, indent 2, NaN written as null)."""
    text = json.dumps(_clean(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
    return write_text(path, text)


def write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV atomically, without the index, full precision."""
    return write_atomic(path, lambda p: frame.to_csv(p, index=False, lineterminator="\n"))


def _clean(obj: object) -> object:
    """NaN and infinities -> None; NumPy scalars -> Python ones."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

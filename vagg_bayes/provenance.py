"""Provenance of a result, assembled in one place: versions, data hashes, platform.

``manifest.json`` holds it whether the result was written by the command line or by
``result.write()`` from Python (the command line adds its own command and the data
file's hash).

May import: the standard library, pandas.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd

VERSIONED = ("vagg-bayes", "pymc", "pytensor", "arviz", "numpy", "pandas", "scipy", "xarray",
             "dowhy", "networkx")


def frame_hash(df: pd.DataFrame) -> str:
    """SHA-256 of a DataFrame's values and column names (order-sensitive)."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Python and the versions of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def environment() -> dict:
    """What every manifest records: versions and platform."""
    return {"versions": versions(), "platform": platform.platform()}


def command_manifest(argv: list[str], data_path: Path | None, seed: int) -> dict:
    """What the command line adds: its command, the data file and its hash, the seed."""
    return {
        "command_line": ["vagg-bayes", *argv],
        "seed": seed,
        "data_file": str(data_path) if data_path else None,
        "data_file_sha256": file_sha256(data_path) if data_path else None,
    }

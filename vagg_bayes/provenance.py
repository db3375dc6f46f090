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


def spec_record(spec):
    """A spec as a JSON-able record without its source path (two copies of one spec match)."""
    if hasattr(spec, "to_dict"):
        record = spec.to_dict()
        record.pop("source", None)
        return record
    return repr(spec)


def run_fingerprint(analysis, data: pd.DataFrame) -> str:
    """SHA-256 of what every refit of a run shares: the data, the spec, the settings.

    Keys the resume caches of ``refute`` and ``compare`` (``OUT/refits/``): a cached refit
    is reused only by a run with the same data, spec and sampler settings.
    """
    import json

    settings = analysis.settings
    settings = dict(settings.to_dict()) if hasattr(settings, "to_dict") else repr(settings)
    if isinstance(settings, dict):
        settings.pop("cores", None)  # where chains run does not change the draws
    record = {"data": frame_hash(data), "spec": spec_record(analysis.spec),
              "settings": settings, "prior_scale": getattr(analysis, "prior_scale", 1.0)}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()

"""Read a results folder back: its tables, records and figures, as the commands wrote them.

The HTML report (:mod:`vagg_bayes.report.html`) is rebuilt from these files alone, without
refitting: every number it shows is read from a CSV or JSON file of the folder.

A *results folder* is a folder that a command of DESIGN.md section 4.2 wrote: it holds at
least one of :data:`MARKERS`. The demo nests results folders (``mechanisms/``,
``scenarios/``); :func:`collect_folders` finds them one level down.

May import: the standard library, pandas, ``errors``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vagg_bayes.errors import DataError

#: Files that mark a folder as a results folder (any one of them is enough).
MARKERS = ("effects.csv", "refutations.csv", "comparison.csv", "averaged_effects.csv",
           "scenario.csv", "diagnostics.json", "manifest.json", "refute_manifest.json")

#: Columns every effects-like table (effects.csv, averaged_effects.csv) must have.
EFFECT_COLUMNS = ("effect", "mean", "sd", "hdi_low", "hdi_high", "prob_positive")

#: Subfolders that are never results folders of their own (refit caches).
_SKIP = frozenset({"refits"})


@dataclass(frozen=True)
class ResultsFolder:
    """One results folder on disk, read lazily (each file once).

    Attributes
    ----------
    path : pathlib.Path
    label : str
        How the report names the folder (its name; ``parent/child`` when nested).
    """

    path: Path
    label: str
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def _cached(self, kind: str, name: str, read):
        """``read(path)`` of the file ``name``, read once (None when it is absent)."""
        key = (kind, name)
        if key not in self._cache:
            path = self.path / name
            self._cache[key] = read(path) if path.is_file() else None
        return self._cache[key]

    def has(self, name: str) -> bool:
        """Whether the folder holds the file ``name``."""
        return (self.path / name).is_file()

    def files(self, pattern: str) -> list[Path]:
        """The folder's files matching a glob pattern, sorted by name."""
        return sorted(p for p in self.path.glob(pattern) if p.is_file())

    def csv(self, name: str, *, columns: tuple[str, ...] = ()) -> pd.DataFrame | None:
        """The table ``name`` (None when absent).

        Raises
        ------
        DataError
            If the file cannot be parsed as CSV or lacks one of ``columns``.
        """
        def read(path: Path) -> pd.DataFrame:
            try:
                frame = pd.read_csv(path)
            except (OSError, ValueError, pd.errors.ParserError) as exc:
                raise DataError(
                    f"{path} cannot be read as a CSV table ({exc}). It is a file of a "
                    "results folder: write it again with the command that made it, or "
                    "remove it to leave its section out of the report."
                ) from None
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise DataError(
                    f"{path} lacks the column(s) {', '.join(missing)} (it has "
                    f"{', '.join(map(str, frame.columns))}). A results folder's "
                    f"{name} has the columns {', '.join(columns)}: write it again with "
                    "the command that made it, or remove it to leave its section out."
                )
            return frame

        frame = self._cached("csv", name, read)
        return None if frame is None else frame.copy()

    def effects(self, name: str = "effects.csv") -> pd.DataFrame | None:
        """An effects-like table (``effects.csv``, ``averaged_effects.csv``) or None."""
        return self.csv(name, columns=EFFECT_COLUMNS)

    def json(self, name: str) -> dict | None:
        """The JSON record ``name`` (None when absent).

        Raises
        ------
        DataError
            If the file is not a JSON object.
        """
        def read(path: Path) -> dict:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise DataError(
                    f"{path} cannot be read as JSON ({exc}). Write it again with the "
                    "command that made it, or remove it to leave its section out."
                ) from None
            if not isinstance(record, dict):
                raise DataError(
                    f"{path} holds a JSON {type(record).__name__}, not an object. Write "
                    "it again with the command that made it, or remove it."
                )
            return record

        return self._cached("json", name, read)

    @property
    def manifest(self) -> dict:
        """``manifest.json`` (or, for a refutation-only folder, ``refute_manifest.json``)."""
        return self.json("manifest.json") or self.json("refute_manifest.json") or {}

    @property
    def spec(self) -> dict:
        """The spec as recorded in the manifest (empty when none is recorded).

        A comparison's manifest records one spec per model: the first one's is returned
        (they share the outcome; the treatment is the first model's).
        """
        for record in (self.json("manifest.json"), self.json("refute_manifest.json")):
            record = record or {}
            specs = [record.get("spec")] + [m.get("spec") for m in
                                            (record.get("models") or {}).values()
                                            if isinstance(m, dict)]
            for spec in specs:
                if isinstance(spec, dict) and spec.get("outcome"):
                    return spec
        return {}

    def diagnostics(self) -> tuple[str, dict] | None:
        """(file, record) of the folder's sampler diagnostics, or None.

        ``diagnostics.json`` (estimate); else the ``diagnostics`` a scenario's
        ``manifest.json`` records; else a record built from the pass / fail flags of a
        comparison's models or of the estimate behind ``refutations.csv``. A record has
        at least ``passed`` (bool) and ``problems`` (list of str).
        """
        full = self.json("diagnostics.json")
        if full is not None:
            return "diagnostics.json", full
        manifest = self.json("manifest.json") or {}
        if isinstance(manifest.get("diagnostics"), dict):
            return "manifest.json", manifest["diagnostics"]
        models = manifest.get("models")
        if isinstance(models, dict) and models:
            failed = [m for m, r in models.items()
                      if isinstance(r, dict) and r.get("diagnostics_passed") is False]
            return "manifest.json", {
                "passed": not failed,
                "problems": [f"the posterior of model {m} fails its diagnostics (run "
                             "vagg-bayes estimate on its spec for the details)"
                             for m in failed]}
        refute = self.json("refute_manifest.json") or {}
        if "estimate_diagnostics_passed" in refute:
            passed = bool(refute["estimate_diagnostics_passed"])
            return "refute_manifest.json", {
                "passed": passed,
                "problems": [] if passed else [
                    "the estimate behind refutations.csv fails its diagnostics (run "
                    "vagg-bayes estimate for the details)"]}
        return None

    def graph_file(self) -> Path | None:
        """The spec's DAG file: its recorded path, else a file of that name in the folder."""
        recorded = self.spec.get("graph")
        if not recorded:
            return None
        path = Path(recorded)
        for candidate in (path, self.path / path.name, self.path.parent / path.name):
            if candidate.is_file():
                return candidate
        return None


def is_results_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding at least one of :data:`MARKERS`."""
    return path.is_dir() and any((path / name).is_file() for name in MARKERS)


def collect_folders(dirs) -> list[ResultsFolder]:
    """The results folders named on the command line, each followed by its nested ones.

    Parameters
    ----------
    dirs : sequence of str or pathlib.Path
        Results folders; the first one leads the report (its total effect is the
        headline).

    Returns
    -------
    list of ResultsFolder
        Each folder of ``dirs`` in order, followed by its subfolders that are results
        folders themselves (the demo's ``mechanisms/`` and ``scenarios/``; not
        ``refits/``), sorted by name. A folder is listed once.

    Raises
    ------
    DataError
        If a folder of ``dirs`` does not exist or holds none of :data:`MARKERS`.
    """
    if not dirs:
        raise DataError("No results folder given. Pass one or more folders written by "
                        "vagg-bayes estimate, refute, compare, scenario or demo.")
    folders: list[ResultsFolder] = []
    seen: set[Path] = set()
    for given in dirs:
        path = Path(given)
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is a file, not a folder"
            raise DataError(
                f"{path} {what}. `vagg-bayes report` takes results folders: the --out "
                "folders of vagg-bayes estimate, refute, compare, scenario or demo."
            )
        if not is_results_folder(path):
            raise DataError(
                f"{path} is not a results folder: it holds none of {', '.join(MARKERS)}. "
                "Pass the --out folder of vagg-bayes estimate, refute, compare, scenario "
                "or demo (the report is built from the files those commands write)."
            )
        for folder, label in [(path, path.resolve().name or str(path))] + [
                (sub, f"{path.resolve().name}/{sub.name}") for sub in sorted(path.iterdir())
                if sub.name not in _SKIP and not sub.name.startswith(".")
                and is_results_folder(sub)]:
            key = folder.resolve()
            if key not in seen:
                seen.add(key)
                folders.append(ResultsFolder(folder, label))
    return folders

"""Resume cache of a comparison's exact refits (``OUT/refits/``).

Every finished refit's held-out log predictive densities are written atomically to
``OUT/refits/compare-<model>-<block>-<key>.json``; the key hashes the run's fingerprint
(data, spec, sampler settings: :func:`vagg_bayes.provenance.run_fingerprint`), the LOO
unit, the units left out and the refit's seed, so a record is reused only by the same
refit. With ``resume=False`` old records are removed first; with ``resume=True`` they are
read back instead of refitted, so an interrupted ``vagg-bayes compare`` continues where it
stopped and ends with the numbers an uninterrupted run gives.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from vagg_bayes.report.io import warn_unreadable_record


class RefitCache:
    """Finished refits of one comparison, one JSON file each.

    Parameters
    ----------
    folder : path
        ``OUT/refits``; created when missing.
    resume : bool
        Read finished refits back; without it the folder's old comparison records go.
    """

    def __init__(self, folder: str | Path, *, resume: bool = False):
        from vagg_bayes.report.io import cache_folder

        self.folder = cache_folder(folder, "compare-*.json", resume=resume)
        self.resume = bool(resume)
        self.counts = {"run": 0, "cached": 0}

    def path(self, model: str, block: int, key: dict) -> Path:
        text = json.dumps(key, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()[:20]
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model)[:40]
        return self.folder / f"compare-{safe}-{block:04d}-{digest}.json"

    def load(self, model: str, block: int, key: dict) -> dict | None:
        """The cached record of this refit, or None (not resuming, absent, unreadable)."""
        path = self.path(model, block, key)
        if not (self.resume and path.is_file()):
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return warn_unreadable_record(path, exc)
        if not isinstance(record, dict) or "values" not in record:
            return warn_unreadable_record(path, "no 'values' in the record")
        self.counts["cached"] += 1
        return record

    def save(self, model: str, block: int, key: dict, record: dict) -> None:
        from vagg_bayes.report.io import write_text

        self.counts["run"] += 1
        text = json.dumps(record, sort_keys=True, allow_nan=True)
        write_text(self.path(model, block, key), text + "\n")

"""Atomic file writing: write to a temporary name in the same folder, then rename.

A crash never leaves a half-written table behind, and :func:`staged_folder` makes a
whole results folder appear at once: its files are written into a hidden folder beside
it and moved into place only when every one is complete.

May import: the standard library, pandas.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
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



def cache_folder(folder: str | Path, records: str, *, resume: bool) -> Path:
    """Prepare the folder of a resumable run's finished records (``OUT/refits``).

    Creates it when missing and removes the temporary files a killed run left (``.*.tmp``,
    from :func:`write_atomic`); without ``resume`` it also removes the old ``records``
    (a glob pattern), so a new run starts afresh.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for partial in folder.glob(".*.tmp"):
        partial.unlink(missing_ok=True)
    if not resume:
        for old in folder.glob(records):
            old.unlink(missing_ok=True)
    return folder

def warn_unreadable_record(path: Path, why: object) -> None:
    """Warn that a cached record of a resumable run cannot be read: the run redoes that
    piece and overwrites the file (``refute`` and ``compare`` with ``--resume``)."""
    import warnings

    warnings.warn(f"The cached refit {path} cannot be read ({why}); it is refitted and the "
                  "file overwritten. Nothing to do unless this repeats (then check the disk "
                  "or delete the folder and run without --resume).", RuntimeWarning,
                  stacklevel=3)


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


# --------------------------------------------------------------------------- whole folders


def _make_stage(out: Path) -> Path:
    """Make a new hidden folder beside ``out`` (inside it when its parent is read-only)."""
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    for where, prefix in ((parent, f".{out.name}.partial-"), (out, ".partial-")):
        for _ in range(100):
            stage = where / f"{prefix}{secrets.token_hex(4)}"
            try:
                stage.mkdir()  # the user's umask applies, as for a folder made by mkdir
                return stage
            except FileExistsError:
                continue
            except OSError:
                if where == out or not out.is_dir():
                    raise
                break  # parent not writable: stage inside the existing folder
    raise FileExistsError(f"could not create a temporary folder beside {out}")


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C back until the block ends.

    A Ctrl-C that arrived meanwhile is then raised as a ``KeyboardInterrupt`` whose
    ``published`` attribute is True (the block finished before it).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        exc = KeyboardInterrupt()
        exc.published = True
        raise exc


@contextlib.contextmanager
def staged_folder(out: str | Path, *, replaces: Iterable[str] = ()) -> Iterator[Path]:
    """Write a folder's files where nobody sees them, then put them in place together.

    Yields an empty hidden folder (``.<name>.partial-<random>`` beside ``out``; inside
    ``out`` when only ``out`` itself is writable). When the block ends normally:

    - ``out`` does not exist: the hidden folder is renamed to ``out``, so the folder
      appears complete, with every file, or not at all;
    - ``out`` exists (a previous run's results, or other files such as the demo's
      panel): each new file replaces its namesake by ``os.replace``, Ctrl-C held back
      until all have moved, and the names in ``replaces`` (the previous run's files)
      that the new set lacks are removed; other files are left alone.

    When the block raises (an error, Ctrl-C while files are being written) the hidden
    folder is removed and ``out`` is left exactly as it was.

    Parameters
    ----------
    out : str or pathlib.Path
        The folder to fill.
    replaces : iterable of str, optional
        File names in ``out`` that belong to the set being replaced.

    Yields
    ------
    pathlib.Path
        The hidden folder to write into (flat: file names only).
    """
    out = Path(out)
    stage = _make_stage(out)
    try:
        yield stage
        with _sigint_held():
            if not out.exists() and stage.parent == out.parent:
                os.rename(stage, out)
            else:
                out.mkdir(parents=True, exist_ok=True)
                names = sorted(p.name for p in stage.iterdir())
                for name in names:
                    os.replace(stage / name, out / name)
                for name in set(replaces) - set(names):
                    target = out / name
                    if target.is_file() and target.parent == out:
                        target.unlink()
    finally:
        if stage.exists() and stage != out:
            shutil.rmtree(stage, ignore_errors=True)

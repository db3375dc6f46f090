"""Changes to a panel that a refutation refit is fitted to: small, picklable, fingerprinted.

A refit task carries a *transform* (``transform(data) -> new data``) rather than the
changed data, so that worker processes and Dask workers rebuild each replicate's data
from the original panel they already hold, and so that the resume cache can key a
finished refit by what was done (:meth:`Transform.fingerprint`). Every transform is a
frozen dataclass of plain values (labels, tuples, a seed, at most one array), never
modifies its input and returns a frame with a fresh ``RangeIndex``.

- :class:`ReassignSeries`: each group's (or unit's) series of a column replaced by a
  donor's series, aligned on time (the treatment permuted where it is assigned);
- :class:`PermuteRows`: a column permuted across rows within cells;
- :class:`AddLead`: a column led by some periods within each group or unit;
- :class:`KeepGroups`: a subset of groups (or all but some);
- :class:`ResampleGroups`: groups drawn with replacement, each copy a new group;
- :class:`SetColumn` / :class:`AddNormal`: a column replaced or added;
- :class:`Chain`: several of these in turn.

May import: numpy, pandas, the standard library.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd


def _plain(value: Any) -> Any:
    """Labels -> plain Python values (NumPy scalars unwrapped) for pickling and hashing."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def plain_labels(values) -> tuple:
    """Return the labels as a tuple of plain Python values."""
    return tuple(_plain(v) for v in values)


def seed_key(seed: np.random.SeedSequence) -> tuple:
    """Return ``(entropy, spawn_key)`` of a seed: enough to rebuild it, hashable."""
    return (int(seed.entropy), tuple(int(k) for k in seed.spawn_key))


def seed_from_key(key: tuple) -> np.random.SeedSequence:
    """Rebuild the :class:`numpy.random.SeedSequence` of :func:`seed_key`."""
    entropy, spawn = key
    return np.random.SeedSequence(entropy=entropy, spawn_key=tuple(spawn))


class Transform:
    """Base of the transforms: ``__call__(data) -> data`` and a stable fingerprint."""

    def __call__(self, data: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover
        """Return the changed copy of ``data``."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """SHA-256 of the class name and every field (arrays by their bytes)."""
        h = hashlib.sha256(type(self).__name__.encode())
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            h.update(f.name.encode())
            if isinstance(value, np.ndarray):
                h.update(str(value.dtype).encode())
                h.update(np.ascontiguousarray(value).tobytes())
            elif isinstance(value, tuple) and value and isinstance(value[0], Transform):
                for part in value:
                    h.update(part.fingerprint().encode())
            else:
                h.update(repr(value).encode())
        return h.hexdigest()


def _codes(values: pd.Series, labels) -> np.ndarray:
    return pd.Index(list(labels)).get_indexer(values)


@dataclass(frozen=True)
class ReassignSeries(Transform):
    """Give every entity (group or unit) the series of ``column`` of its donor.

    ``donors`` pairs each entity's label with its donor's label; entities not listed
    keep their own series. With ``time`` the series are aligned on time: the row of
    entity ``g`` at time ``t`` gets the donor's value at ``t``; where the donor has no
    row at ``t`` (an unbalanced panel), its value at the nearest earlier time, else the
    nearest later one. ``column`` must be constant within (entity, time) cells (within
    entities without ``time``); the first value of each cell is used.
    """

    column: str
    entity: str
    time: str | None
    donors: tuple

    def __call__(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return the changed copy of ``data``."""
        data = data.reset_index(drop=True)
        labels = pd.unique(data[self.entity])
        ent = _codes(data[self.entity], labels)
        mapping = dict(self.donors)
        donor_labels = [mapping.get(_plain(g), _plain(g)) for g in labels]
        donor_codes = pd.Index(list(labels)).get_indexer(pd.Index(donor_labels))
        if (donor_codes < 0).any():
            missing = [d for d, c in zip(donor_labels, donor_codes, strict=True) if c < 0]
            raise ValueError(f"donor {missing[0]!r} is not a value of {self.entity!r}")
        if self.time is None:
            first = data.groupby(ent, sort=True)[self.column].first().to_numpy()
            values = first[donor_codes[ent]]
        else:
            times = np.sort(pd.unique(data[self.time]))
            tc = _codes(data[self.time], times)
            table = np.full((len(labels), len(times)), np.nan)
            cells = data.groupby([ent, tc], sort=False)[self.column].first()
            table[cells.index.get_level_values(0), cells.index.get_level_values(1)] = cells
            table = pd.DataFrame(table).ffill(axis=1).bfill(axis=1).to_numpy()
            values = table[donor_codes[ent], tc]
        out = data.copy()
        out[self.column] = values
        return out


@dataclass(frozen=True)
class PermuteRows(Transform):
    """Permute ``column`` across the rows of each cell of ``within``.

    All rows when ``within`` is empty; the generator is seeded by ``seed`` (a
    :func:`seed_key`).
    """

    column: str
    within: tuple
    seed: tuple

    def __call__(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return the changed copy of ``data``."""
        data = data.reset_index(drop=True)
        n = len(data)
        rng = np.random.default_rng(seed_from_key(self.seed))
        if self.within:
            key = data.groupby(list(self.within), sort=True).ngroup().to_numpy()
        else:
            key = np.zeros(n, dtype=int)
        order = np.lexsort((np.arange(n), key))  # rows block by block, in their order
        shuffled = np.lexsort((rng.random(n), key))  # the same blocks, shuffled inside
        values = data[self.column].to_numpy()
        new = values.copy()
        new[order] = values[shuffled]
        out = data.copy()
        out[self.column] = new
        return out


@dataclass(frozen=True)
class AddLead(Transform):
    """Add ``new_column``: ``column`` led by ``lead`` periods within each entity.

    Periods are the sorted distinct values of ``time``; the value at period ``k + lead``
    of the same entity (group or unit). Rows whose entity has no row ``lead`` periods
    later are dropped (the future is unknown there).
    """

    column: str
    new_column: str
    entity: str
    time: str
    lead: int

    def __call__(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return the changed copy of ``data``."""
        data = data.reset_index(drop=True)
        labels = pd.unique(data[self.entity])
        times = np.sort(pd.unique(data[self.time]))
        ent = _codes(data[self.entity], labels)
        tc = _codes(data[self.time], times)
        table = np.full((len(labels), len(times) + self.lead), np.nan)
        cells = data.groupby([ent, tc], sort=False)[self.column].mean()
        table[cells.index.get_level_values(0), cells.index.get_level_values(1)] = cells
        led = table[ent, tc + self.lead]
        keep = ~np.isnan(led)
        out = data.loc[keep].copy()
        out[self.new_column] = led[keep]
        return out.reset_index(drop=True)


@dataclass(frozen=True)
class KeepGroups(Transform):
    """The rows of the listed groups (``keep=True``) or of all other groups."""

    group: str
    labels: tuple
    keep: bool = True

    def __call__(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return the changed copy of ``data``."""
        data = data.reset_index(drop=True)
        listed = data[self.group].map(_plain).isin(set(self.labels)).to_numpy()
        return data.loc[listed if self.keep else ~listed].reset_index(drop=True)


@dataclass(frozen=True)
class ResampleGroups(Transform):
    """Groups drawn with replacement: the rows of each drawn group, once per draw.

    The ``k``-th draw becomes the new group ``"<label>#k"`` (and its units
    ``"<unit>#k"``), so a group drawn twice is two distinct groups with distinct units
    (a cluster bootstrap).
    """

    group: str
    unit: str | None
    draws: tuple

    def __call__(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return the changed copy of ``data``."""
        data = data.reset_index(drop=True)
        rows = data.groupby(data[self.group].map(_plain), sort=False).indices
        take = np.concatenate([rows[label] for label in self.draws])
        copy = np.concatenate([np.full(len(rows[label]), k) for k, label in
                               enumerate(self.draws)])
        out = data.iloc[take].reset_index(drop=True)
        suffix = pd.Series(copy).map("#{}".format)
        out[self.group] = out[self.group].astype(str) + suffix
        if self.unit is not None:
            out[self.unit] = out[self.unit].astype(str) + suffix
        return out


@dataclass(frozen=True, eq=False)
class SetColumn(Transform):
    """Set (or add) ``column`` to ``values`` (one per row of the data it is given)."""

    column: str
    values: np.ndarray

    def __call__(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return the changed copy of ``data``."""
        if len(self.values) != len(data):
            raise ValueError(f"{len(self.values)} values for {len(data)} rows")
        out = data.reset_index(drop=True).copy()
        out[self.column] = np.asarray(self.values)
        return out


@dataclass(frozen=True)
class AddNormal(Transform):
    """Add ``column``: independent standard-normal draws (a random common cause)."""

    column: str
    seed: tuple

    def __call__(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return the changed copy of ``data``."""
        rng = np.random.default_rng(seed_from_key(self.seed))
        out = data.reset_index(drop=True).copy()
        out[self.column] = rng.standard_normal(len(out))
        return out


@dataclass(frozen=True)
class Chain(Transform):
    """Apply ``parts`` in turn."""

    parts: tuple

    def __call__(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return ``data`` passed through every part in turn."""
        for part in self.parts:
            data = part(data)
        return data


def unused_name(data: pd.DataFrame, base: str) -> str:
    """Return ``base``, or ``base_2``, ``base_3``, ...: a column the data do not have."""
    name, k = base, 1
    while name in data.columns:
        k += 1
        name = f"{base}_{k}"
    return name

"""Samplers of a split's global rows, deterministic from a seed and resumable exactly.

Every sampler draws global row ids (the row convention of :mod:`features.class_index`: shards
in manifest order, each shard's rows after those of the shards before it) with NumPy, and keeps
its position as a few integers, never as the sequence itself:

- :class:`SequentialSampler`: rows ``0 .. N-1`` once (evaluation order).
- :class:`ShuffledSampler`: a new permutation of the rows every epoch, without end.
- :class:`BalancedSampler`: PANNs' balanced sampler. Classes are visited in rounds, each round a
  new permutation of the classes that have clips; each class has its own queue, a permutation of
  its clips' rows, which is reshuffled when exhausted. Rare and frequent classes are therefore
  drawn equally often.
- :class:`WeightedSampler`: rows drawn with replacement with probability proportional to a
  per-clip weight (for example :attr:`features.class_index.ClassIndex.weights`).

Each permutation or block of draws is generated from ``numpy.random.default_rng`` seeded with
``(seed, stream, ...)`` (the epoch, the round, the class and its pass), so :meth:`Sampler.state`
is a small JSON-able dict of counters and :meth:`Sampler.restore` regenerates the permutation in
use: a run resumed from a saved state continues the very sequence it would have produced.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

_ORDER_STREAM = 0
_CLASS_STREAM = 1
_EPOCH_STREAM = 2
_DRAW_STREAM = 3


def _permutation(n: int, *key: int) -> np.ndarray:
    """A permutation of ``range(n)`` determined by ``key`` (int64)."""
    return np.random.default_rng(list(key)).permutation(n).astype(np.int64)


class Sampler:
    """Base of the samplers: an iterator of global rows with a saveable position.

    Subclasses implement :meth:`take`, :meth:`state` and :meth:`restore`.
    """

    kind = "sampler"

    def take(self, n: int) -> np.ndarray:
        """Return the next ``n`` global rows (int64); fewer, or none, once a finite sampler ends."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Return the position of the sampler as a JSON-able dict."""
        raise NotImplementedError

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a position returned by :meth:`state` of a sampler built the same way."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        while True:
            rows = self.take(1024)
            if not len(rows):
                return
            yield from rows.tolist()

    def _check(self, state: dict[str, Any], **expected: Any) -> None:
        """Refuse a state saved by another kind of sampler or one built on other data."""
        if state.get("kind") != self.kind:
            raise ValueError(f"state of a {state.get('kind')!r} sampler given to a {self.kind!r}")
        for key, value in expected.items():
            if state.get(key) != value:
                raise ValueError(
                    f"{self.kind} sampler state has {key}={state.get(key)!r}, this sampler has "
                    f"{value!r}: it was saved for other data or another seed"
                )


class SequentialSampler(Sampler):
    """Rows ``0 .. num_rows - 1`` in order, once.

    Parameters
    ----------
    num_rows : int
        Clips in the split.
    """

    kind = "sequential"

    def __init__(self, num_rows: int) -> None:
        self.num_rows = int(num_rows)
        self.position = 0

    def take(self, n: int) -> np.ndarray:
        """Return the next ``n`` rows, fewer at the end of the split."""
        end = min(self.position + n, self.num_rows)
        rows = np.arange(self.position, end, dtype=np.int64)
        self.position = end
        return rows

    def state(self) -> dict[str, Any]:
        """Position as ``{"kind", "num_rows", "position"}``."""
        return {"kind": self.kind, "num_rows": self.num_rows, "position": self.position}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state``."""
        self._check(state, num_rows=self.num_rows)
        self.position = int(state["position"])


class ShuffledSampler(Sampler):
    """A new permutation of ``range(num_rows)`` every epoch, without end.

    Parameters
    ----------
    num_rows : int
    seed : int
    """

    kind = "shuffled"

    def __init__(self, num_rows: int, seed: int = 0) -> None:
        if num_rows <= 0:
            raise ValueError("a shuffled sampler needs at least one row")
        self.num_rows = int(num_rows)
        self.seed = int(seed)
        self.epoch = 0
        self.position = 0
        self._order = _permutation(self.num_rows, self.seed, _EPOCH_STREAM, 0)

    def take(self, n: int) -> np.ndarray:
        """Return the next ``n`` rows, crossing into the next epoch(s) as needed."""
        out = np.empty(n, dtype=np.int64)
        filled = 0
        while filled < n:
            if self.position == self.num_rows:
                self.epoch += 1
                self.position = 0
                self._order = _permutation(self.num_rows, self.seed, _EPOCH_STREAM, self.epoch)
            step = min(n - filled, self.num_rows - self.position)
            out[filled : filled + step] = self._order[self.position : self.position + step]
            filled += step
            self.position += step
        return out

    def state(self) -> dict[str, Any]:
        """Position as ``{"kind", "num_rows", "seed", "epoch", "position"}``."""
        return {
            "kind": self.kind,
            "num_rows": self.num_rows,
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state``."""
        self._check(state, num_rows=self.num_rows, seed=self.seed)
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = _permutation(self.num_rows, self.seed, _EPOCH_STREAM, self.epoch)


class BalancedSampler(Sampler):
    """PANNs-style balanced sampling: a shuffled round-robin over classes.

    Parameters
    ----------
    per_class : sequence of np.ndarray
        Global rows of each class's positive clips (``ClassIndex.per_class()``). Classes without
        clips are skipped.
    seed : int

    Notes
    -----
    Class ``c``'s queue in its ``p``-th pass is a permutation of ``per_class[c]`` seeded with
    ``(seed, 1, c, p)``; the class order of round ``r`` is a permutation of the classes with
    clips seeded with ``(seed, 0, r)``. The state is the round, the position in it, and each
    class's pass and position: ``2 C + 2`` integers.
    """

    kind = "balanced"

    def __init__(self, per_class: Sequence[np.ndarray], seed: int = 0) -> None:
        self.per_class = [np.asarray(rows, dtype=np.int64) for rows in per_class]
        self.classes = np.array(
            [c for c, rows in enumerate(self.per_class) if len(rows)], dtype=np.int64
        )
        if not len(self.classes):
            raise ValueError("a balanced sampler needs at least one class with clips")
        self.seed = int(seed)
        self.round = 0
        self.round_position = 0
        self.passes = np.zeros(len(self.per_class), dtype=np.int64)
        self.positions = np.zeros(len(self.per_class), dtype=np.int64)
        self._order = self._class_order()
        self._queues: dict[int, np.ndarray] = {}

    @classmethod
    def from_index(cls, index: Any, seed: int = 0) -> BalancedSampler:
        """Build from a :class:`features.class_index.ClassIndex`."""
        return cls(index.per_class(), seed)

    @property
    def num_classes(self) -> int:
        """Classes of the class map, with or without clips."""
        return len(self.per_class)

    def _class_order(self) -> np.ndarray:
        perm = _permutation(len(self.classes), self.seed, _ORDER_STREAM, self.round)
        return self.classes[perm]

    def _queue(self, c: int) -> np.ndarray:
        queue = self._queues.get(c)
        if queue is None:
            rows = self.per_class[c]
            perm = _permutation(len(rows), self.seed, _CLASS_STREAM, c, int(self.passes[c]))
            queue = self._queues[c] = rows[perm]
        return queue

    def take(self, n: int) -> np.ndarray:
        """Return the next ``n`` rows, one per class visited."""
        out = np.empty(n, dtype=np.int64)
        for i in range(n):
            if self.round_position == len(self._order):
                self.round += 1
                self.round_position = 0
                self._order = self._class_order()
            c = int(self._order[self.round_position])
            self.round_position += 1
            queue = self._queue(c)
            out[i] = queue[self.positions[c]]
            self.positions[c] += 1
            if self.positions[c] == len(queue):
                self.positions[c] = 0
                self.passes[c] += 1
                del self._queues[c]
        return out

    def state(self) -> dict[str, Any]:
        """Position as ``{"kind", "seed", "num_classes", "round", "round_position", "passes",
        "positions"}``."""
        return {
            "kind": self.kind,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "round": self.round,
            "round_position": self.round_position,
            "passes": self.passes.tolist(),
            "positions": self.positions.tolist(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state``."""
        self._check(state, seed=self.seed, num_classes=self.num_classes)
        self.round = int(state["round"])
        self.round_position = int(state["round_position"])
        self.passes = np.asarray(state["passes"], dtype=np.int64)
        self.positions = np.asarray(state["positions"], dtype=np.int64)
        self._order = self._class_order()
        self._queues = {}


class WeightedSampler(Sampler):
    """Rows drawn with replacement, with probability proportional to ``weights``.

    Parameters
    ----------
    weights : np.ndarray [shape=(N,)]
        Non-negative per-clip weights by global row, not all zero.
    seed : int
    block : int
        Draws generated at a time; block ``b`` is seeded with ``(seed, 3, b)``.
    """

    kind = "weighted"

    def __init__(self, weights: np.ndarray, seed: int = 0, block: int = 4096) -> None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or not len(weights) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("weights must be a non-empty 1-D array, >= 0 and not all zero")
        self._cdf = np.cumsum(weights / weights.sum())
        self.num_rows = len(weights)
        self.seed = int(seed)
        self.block = int(block)
        self.drawn = 0
        self._loaded = 0
        self._draws = self._block(0)

    def _block(self, b: int) -> np.ndarray:
        u = np.random.default_rng([self.seed, _DRAW_STREAM, b]).random(self.block)
        rows = np.searchsorted(self._cdf, u * self._cdf[-1], side="right")
        return np.minimum(rows, self.num_rows - 1).astype(np.int64)

    def take(self, n: int) -> np.ndarray:
        """Return the next ``n`` draws."""
        out = np.empty(n, dtype=np.int64)
        filled = 0
        while filled < n:
            b, at = divmod(self.drawn, self.block)
            if b != self._loaded:
                self._draws, self._loaded = self._block(b), b
            step = min(n - filled, self.block - at)
            out[filled : filled + step] = self._draws[at : at + step]
            filled += step
            self.drawn += step
        return out

    def state(self) -> dict[str, Any]:
        """Position as ``{"kind", "num_rows", "seed", "block", "drawn"}``."""
        return {
            "kind": self.kind,
            "num_rows": self.num_rows,
            "seed": self.seed,
            "block": self.block,
            "drawn": self.drawn,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state``."""
        self._check(state, num_rows=self.num_rows, seed=self.seed, block=self.block)
        self.drawn = int(state["drawn"])
        self._loaded = self.drawn // self.block
        self._draws = self._block(self._loaded)


def batches(
    sampler: Sampler, batch_size: int, *, drop_remainder: bool = False
) -> Iterator[np.ndarray]:
    """Yield batches of global rows (int64 arrays) from ``sampler``.

    Parameters
    ----------
    sampler : Sampler
    batch_size : int
    drop_remainder : bool
        Drop a last, smaller batch of a finite sampler.
    """
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    while True:
        rows = sampler.take(batch_size)
        if not len(rows) or (drop_remainder and len(rows) < batch_size):
            return
        yield rows

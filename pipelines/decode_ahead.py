"""Decode the first clips of a run while its segment list is still being validated.

A run validates its segment list before it plans anything, and the validation waits for Great
Expectations to be imported in its own process (``pipelines.expectations_service``): about a
second on one core, during which the other cores have nothing to do. Meanwhile ingest decodes
the clips that the shard builder (``pipelines.shard_build``) will decode first, and the builder
takes them from here instead of decoding them again when it runs in this process (the local
runner with one worker process, as for up to four workers); built elsewhere, the clips are
decoded there as usual and these are dropped.

Only an identical request is served: the same planned clip (every field
:func:`pipelines.clip_stage.prepare_item` reads) with the same clip settings. A clip the
validation rejects, or one the plan leaves out, is never taken: it is dropped once the plan is
made (:func:`keep`), and whatever is left when the run ends (:func:`discard`). Decoding writes
nothing to the dataset, so a crash loses nothing here.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from pipelines.clip_stage import ClipSettings, prepare_item
from pipelines.heap import retain_freed_memory

AHEAD_BYTES = 64 << 20
"""Decoded waveforms held at most (int16 rows): 104 ten-second clips at 32 kHz, two thirds of
what one core decodes while Great Expectations is imported. They add to the process's peak
memory (about 60 MB at 2,000 clips; 96 MB added 80 MB for a tenth of a second more)."""

PLANNED_FIELDS = (
    "clip_id",
    "split",
    "location",
    "precut",
    "start_s",
    "end_s",
    "labels",
    "audio_name",
    "origin",
    "line",
)
"""The fields of a planned clip that :func:`pipelines.clip_stage.prepare_item` reads."""


class _Ahead:
    """Decodes in flight or done, by clip id, with the request each one answers.

    The decoded rows wait in one array made here (a mapping of its own), and :func:`take`
    hands out copies, so the whole array goes back to the system once the last row is taken.
    Left where the decoding thread made them, the rows were freed into that thread's heap,
    which a decoding thread of the pipeline then takes over and fills: the process stayed
    60 MB larger for the rest of the run.
    """

    def __init__(self, items: list[dict], settings: ClipSettings, threads: int) -> None:
        self.settings = settings
        self.rows: np.ndarray | None = np.empty(
            (len(items), round(settings.sample_rate * settings.clip_seconds)), np.int16
        )
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="audiomill-ahead")
        workdir = tempfile.gettempdir()  # local files only: nothing is downloaded there
        self.decodes: dict[str, tuple[tuple, Future]] = {
            item["clip_id"]: (
                _request(item),
                self.executor.submit(self._decode, item, self.rows[slot], workdir),
            )
            for slot, item in enumerate(items)
        }

    def pop(self, clip_id: str) -> tuple[tuple | None, Future | None]:
        """Remove and return the request and decode of ``clip_id`` (``(None, None)`` when
        there is none); once none is left, the rows' array goes with the last future that
        holds a row of it."""
        entry = self.decodes.pop(clip_id, (None, None))
        if not self.decodes:
            self.rows = None
        return entry

    def _decode(self, item: dict, row: np.ndarray, workdir: str) -> dict:
        result = prepare_item(item, self.settings, workdir)
        if result["status"] == "ok" and result["waveform"].shape == row.shape:
            row[:] = result["waveform"]
            result["waveform"] = row
        return result


_lock = threading.Lock()
_ahead: _Ahead | None = None


def _request(item: dict) -> tuple:
    return tuple(tuple(item[k]) if isinstance(item[k], list) else item[k] for k in PLANNED_FIELDS)


def clips_ahead(clip_samples: int) -> int:
    """How many clips of ``clip_samples`` int16 samples fit in :data:`AHEAD_BYTES` (at least 1)."""
    return max(1, AHEAD_BYTES // (2 * max(1, clip_samples)))


def start(items: list[dict], settings: ClipSettings, threads: int) -> None:
    """Start decoding ``items`` (planned local clips, in the order they are wanted) on
    ``threads`` threads; what an earlier call started is dropped."""
    global _ahead
    discard()
    if not items:
        return
    retain_freed_memory()  # as the shard builder does: a decode's arrays reuse freed heap
    with _lock:
        _ahead = _Ahead(items, settings, max(1, threads))


def stop() -> None:
    """Start no further decodes; those done or under way stay to be taken."""
    with _lock:
        ahead = _ahead
    if ahead is not None:
        ahead.executor.shutdown(wait=False, cancel_futures=True)


def take(item: dict, settings: ClipSettings) -> dict | None:
    """What :func:`pipelines.clip_stage.prepare_item` returned for ``item`` decoded ahead with
    ``settings`` (waiting for a decode under way), or None when it was not, or was cancelled.
    An item is served once."""
    with _lock:
        if _ahead is None or _ahead.settings != settings:
            return None
        request, future = _ahead.pop(item["clip_id"])
    if future is None or future.cancelled() or request != _request(item):
        return None
    result = future.result()
    if result["status"] == "ok":
        result = {**result, "waveform": result["waveform"].copy()}
    return result


def keep(planned: Iterable[dict]) -> None:
    """Drop the clips decoded ahead that are not among the ``planned`` clips (those the plan
    left out); the plan is read through once, and only the clips decoded ahead are held."""
    with _lock:
        if _ahead is None:
            return
        wanted = {item["clip_id"] for item in planned if item["clip_id"] in _ahead.decodes}
        for clip_id in set(_ahead.decodes) - wanted:
            _ahead.pop(clip_id)[1].cancel()


def discard() -> None:
    """Stop and drop everything decoded ahead (the end of a run)."""
    global _ahead
    stop()
    with _lock:
        _ahead = None

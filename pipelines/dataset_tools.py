"""Describe and verify a dataset: ``audiomill dataset info`` and ``audiomill dataset verify``."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import h5py
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.dataset_state import ledger_state, load_manifest, read_ledger
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.dataset import CLASSES
from schemas.ledger import STATUS_OK, latest_rows
from schemas.shards import hdf5_problems


def _require_manifest(store: DatasetStore):
    manifest = load_manifest(store)
    if manifest is None:
        raise FileNotFoundError(f"{store.url()} is not an audiomill dataset (no manifest.json)")
    return manifest


def dataset_info(root: str, storage_options: dict | None = None) -> dict:
    """Summarize a dataset: splits, shards, clip counts, failures by reason, bytes.

    Returns
    -------
    dict
        JSON-ready summary.
    """
    store = DatasetStore(root, storage_options)
    manifest = _require_manifest(store)
    splits = {}
    for name, split in sorted(manifest.splits.items()):
        rows = list(ledger_state(store, name).values())
        failed = Counter(r["reason"] for r in rows if r["status"] != STATUS_OK)
        splits[name] = {
            "clips": split.num_clips,
            "shards": len(split.shards),
            "bytes": sum(f.bytes for s in split.shards for f in s.files.values()),
            "requested": len(rows),
            "failed": sum(failed.values()),
            "failures_by_reason": dict(sorted(failed.items())),
        }
    return {
        "dataset": store.url(),
        "schema_version": manifest.schema_version,
        "sample_rate": manifest.sample_rate,
        "clip_seconds": manifest.clip_seconds,
        "num_classes": manifest.num_classes,
        "class_map_sha256": manifest.class_map_sha256,
        "formats": manifest.formats,
        "splits": splits,
        "clips": sum(s["clips"] for s in splits.values()),
        "bytes": sum(s["bytes"] for s in splits.values()),
        "runs": len(manifest.runs),
    }


FAILURE_FIELDS = ("clip_id", "split", "reason", "detail", "source", "origin", "line", "run_id")
"""What :func:`dataset_failures` gives of each failed clip."""


def dataset_failures(
    root: str,
    *,
    split: str | None = None,
    reason: str | None = None,
    run_id: str | None = None,
    storage_options: dict | None = None,
) -> list[dict]:
    """The clips whose latest ledger record is a failure, with its reason and detail.

    Parameters
    ----------
    root : str
        Dataset directory or URL.
    split, reason : str, optional
        Only this split, only this failure reason (for example ``"validation"``).
    run_id : str, optional
        Only failures that run recorded.
    storage_options : dict, optional

    Returns
    -------
    list of dict
        :data:`FAILURE_FIELDS` of each clip, ordered by split, list file, line and clip id.
    """
    store = DatasetStore(root, storage_options)
    _require_manifest(store)
    table = read_ledger(store, split)
    if run_id is not None:
        table = table.filter(pc.equal(table["run_id"], run_id))
    rows = [
        {k: r[k] for k in FAILURE_FIELDS}
        for r in latest_rows(table).values()
        if r["status"] != STATUS_OK and reason in (None, r["reason"])
    ]
    return sorted(rows, key=lambda r: (r["split"], r["origin"] or "", r["line"] or 0, r["clip_id"]))


@dataclass
class VerifyReport:
    """Result of :func:`verify_dataset`: problems found (empty means the dataset is sound)."""

    problems: list[str] = field(default_factory=list)
    files_checked: int = 0
    clips_checked: int = 0

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def verify_dataset(
    root: str,
    storage_options: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check every committed shard: checksum, row count, readability, layout, ledger agreement.

    Also checks that ``classes.csv`` matches the manifest's class map digest and that no clip id
    appears in two shards.
    """
    store = DatasetStore(root, storage_options)
    manifest = _require_manifest(store)
    report = VerifyReport()
    try:
        cmap = ClassMap.from_csv_text(store.read_text(CLASSES), store.url(CLASSES))
        if cmap.sha256 != manifest.class_map_sha256:
            report.problems.append("classes.csv does not match the manifest's class map digest")
    except (FileNotFoundError, ValueError) as exc:
        report.problems.append(f"classes.csv unreadable: {exc}")
    ledger = {
        name: ledger_state(store, name)
        for name in sorted(set(manifest.splits) | set(store.listdir("ledger")))
    }
    ok_rows = {
        (name, c): r
        for name, rows in ledger.items()
        for c, r in rows.items()
        if r["status"] == STATUS_OK
    }
    seen: dict[tuple[str, str, str], int] = {}
    files = [
        (n, s, f) for n, sp in manifest.splits.items() for s in sp.shards for f in s.files.values()
    ]
    for done, (split, shard, f) in enumerate(files, start=1):
        report.files_checked += 1
        problems = _verify_file(store, manifest, split, shard, f, ok_rows, seen)
        report.problems.extend(f"{f.path}: {p}" for p in problems)
        if progress:
            progress(done, len(files))
    shipped = {(k[0], k[2]) for k in seen}
    report.clips_checked = len(shipped)
    if not any(ledger.values()) and files:  # the ledger was read whole above
        report.problems.append("ledger is empty but shards exist")
    report.problems.extend(_uncommitted_work(store, manifest, ok_rows, shipped))
    return report


def _uncommitted_work(store, manifest, ok_rows, shipped) -> list[str]:
    """What an interrupted ingest left outside the manifest: shard files, committed clips."""
    problems = []
    splits = manifest.splits.values()
    listed = {f.path for sp in splits for s in sp.shards for f in s.files.values()}
    for split in store.listdir("waveforms"):
        for name in store.listdir(f"waveforms/{split}"):
            rel = f"waveforms/{split}/{name}"
            if rel not in listed and ".tmp-" not in name:
                problems.append(f"{rel}: not in the manifest")
    missing = Counter(split for split, clip in ok_rows if (split, clip) not in shipped)
    for split, n in sorted(missing.items()):
        problems.append(
            f"split {split}: {n} clip(s) recorded as committed in the ledger are in no shard of "
            "the manifest"
        )
    if problems:
        problems.append(
            "an interrupted ingest leaves this behind: run the same ingest again to adopt its "
            "shards (or to remove what it cannot adopt)"
        )
    return problems


def _verify_file(store, manifest, split, shard, f, ok_rows, seen) -> list[str]:
    if not store.exists(f.path):
        return ["missing"]
    data = store.read_bytes(f.path)
    problems = []
    if len(data) != f.bytes:
        problems.append(f"size {len(data)} != manifest {f.bytes}")
    if hashlib.sha256(data).hexdigest() != f.sha256:
        problems.append("sha256 mismatch")
        return problems
    try:
        if f.path.endswith(".h5"):
            problems += hdf5_problems(io.BytesIO(data), manifest.num_classes, manifest.num_samples)
            with h5py.File(io.BytesIO(data), "r") as hf:
                ids = list(hf["clip_id"].asstr()[:])
        else:
            ids = pq.read_table(io.BytesIO(data), columns=["clip_id"]).column(0).to_pylist()
    except (OSError, ValueError, KeyError) as exc:
        return [*problems, f"unreadable ({exc})"]
    if len(ids) != shard.num_clips:
        problems.append(f"{len(ids)} rows, manifest says {shard.num_clips}")
    if hashlib.sha256("\n".join(ids).encode()).hexdigest() != shard.clip_ids_sha256:
        problems.append("clip ids differ from the manifest's")
    fmt = f.path.rsplit(".", 1)[-1]
    for row, clip_id in enumerate(ids):
        first = seen.setdefault((split, fmt, clip_id), shard.index)
        if first != shard.index:
            problems.append(f"clip {clip_id} also in shard {first}")
        led = ok_rows.get((split, clip_id))
        if led is None:
            problems.append(f"clip {clip_id} has no committed ledger row")
        elif (led["shard"], led["row"]) != (shard.index, row):
            problems.append(f"clip {clip_id}: ledger says shard {led['shard']} row {led['row']}")
    return problems

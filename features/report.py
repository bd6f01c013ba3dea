"""The dataset report: one self-contained HTML page of plots and numbers.

:func:`build_report` gathers, for every split,

- from the shards (one Dask task per shard, see :mod:`features.class_index`): the labels (only
  the ``target``/``y`` datasets or ``labels`` columns), the real audio lengths (``num_samples``),
  and the loudness of at most ``loudness_clips_per_shard`` evenly spaced clips per shard (RMS
  over the clip's real samples, in dBFS: a full-scale square wave is 0 dBFS, a full-scale sine
  -3 dBFS; digital silence is counted at :data:`SILENCE_DBFS`);
- from the ledger: the latest row of every clip (what was committed, what failed and why, the
  delivered duration and the source sample rate of committed clips);
- from ``segments/*.parquet``: what was requested, to set per-class availability (committed
  clips of a class / requested clips of it) against it;

and renders class counts (log scale), label cardinality, co-occurrence of the top classes,
durations, source sample rates, loudness, failures by reason and availability as matplotlib
figures (Agg canvas, no pyplot state) embedded as base64 PNG, so the page opens offline, plus
tables of the numbers and a ``summary.json`` of them beside it.

A split without waveforms (embeddings only) is reported from its embedding shards, without
durations or loudness; a dataset without ledger or segments gets the sections it can have, each
missing one saying why.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import soundfile as sf
from matplotlib.colors import LogNorm

from features.class_index import (
    ShardLabels,
    ShardSource,
    SplitLabels,
    check_committed_sizes,
    read_shard_labels,
    reading_shard,
    split_shards,
)
from features.dask_runtime import DaskClient, Runner, dask_client, map_shards
from features.report_html import (
    STYLE,
    figure,
    html_img,
    html_note,
    html_table,
    png_base64,
    shorten,
)
from pipelines.dataset_state import load_manifest, read_ledger
from pipelines.dataset_tools import has_waveforms, runs_by_stage
from pipelines.storage import DatasetStore, nearest_existing
from schemas.classmap import NAMES_SEP, ClassMap
from schemas.dataset import CLASSES, DatasetManifest
from schemas.ledger import STATUS_OK

REPORT_DIR = "reports/dataset"
SILENCE_DBFS = -120.0
TOP_CLASSES = 20
WORST_AVAILABILITY_ROWS = 20
FULL_SCALE = 32768.0
REQUESTED = pa.schema(
    [("clip_id", pa.string()), ("split", pa.string()), ("labels", pa.list_(pa.int32()))]
)


# --------------------------------------------------------------------------- per-shard statistics


@dataclass
class ShardStats:
    """What the report needs from one shard.

    Attributes
    ----------
    labels : ShardLabels
    num_samples : np.ndarray or None
        int64 (N,) real audio lengths (the rest of each stored clip is padding); None for
        embedding shards.
    rms_dbfs : np.ndarray
        float64 loudness of the sampled clips (empty for embedding shards).
    """

    labels: ShardLabels
    num_samples: np.ndarray | None
    rms_dbfs: np.ndarray


def sample_rows(n: int, k: int) -> np.ndarray:
    """Return at most ``k`` evenly spaced, increasing row numbers of ``n`` rows."""
    if k <= 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(np.int64))


def rms_dbfs(waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each int16 row over its first ``lengths[i]`` samples.

    Parameters
    ----------
    waveforms : np.ndarray [shape=(K, T), dtype=int16]
    lengths : np.ndarray [shape=(K,)]
        Real samples of each row (padding after them is ignored).

    Returns
    -------
    np.ndarray [shape=(K,), dtype=float64]
        ``20 log10(rms / 32768)``, :data:`SILENCE_DBFS` for silent or empty rows.
    """
    x = waveforms.astype(np.float64) / FULL_SCALE
    lengths = np.clip(np.asarray(lengths, dtype=np.int64), 0, x.shape[1])
    mask = np.arange(x.shape[1]) < lengths[:, None]
    power = np.einsum("ij,ij->i", x * mask, x) / np.maximum(lengths, 1)
    with np.errstate(divide="ignore"):
        level = 10.0 * np.log10(power)
    return np.maximum(level, SILENCE_DBFS)


def shard_stats(
    store: DatasetStore, shard: ShardSource, num_classes: int, loudness_clips: int
) -> ShardStats:
    """Read the labels, real audio lengths and sampled loudness of one shard (a Dask task)."""
    labels = read_shard_labels(store, shard, num_classes)
    if shard.kind != "waveforms":
        return ShardStats(labels, None, np.zeros(0))
    rows = sample_rows(labels.num_rows, loudness_clips)
    with reading_shard(store.url(shard.path)):
        return _waveform_stats(store, shard, labels, rows)


def _waveform_stats(
    store: DatasetStore, shard: ShardSource, labels: ShardLabels, rows: np.ndarray
) -> ShardStats:
    """The real audio lengths and the loudness of ``rows`` of a waveform shard."""
    if shard.fmt == "hdf5":
        with store.open_hdf5(shard.path) as hf:
            lengths = hf["num_samples"][:]
            waves = hf["waveform"][rows] if len(rows) else np.zeros((0, 1), np.int16)
        return ShardStats(labels, lengths, rms_dbfs(waves, lengths[rows]))
    with store.open(shard.path) as stream:
        pf = pq.ParquetFile(stream)
        lengths = pf.read(columns=["num_samples"]).column("num_samples").to_numpy()
        sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
        group_ends = np.cumsum(sizes)
        levels = []
        for group in np.unique(np.searchsorted(group_ends, rows, side="right")):
            first = group_ends[group - 1] if group else 0
            audio = pf.read_row_group(int(group), columns=["audio"]).column("audio")
            for row in rows[(rows >= first) & (rows < group_ends[group])]:
                data = audio[int(row - first)]["bytes"].as_py()
                wave, _ = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
                levels.append(rms_dbfs(wave[:, 0][None, :], np.array([len(wave)]))[0])
    return ShardStats(labels, lengths, np.array(levels, dtype=np.float64))


# --------------------------------------------------------------------------- gathering


@dataclass
class SplitStats:
    """Everything the report shows about one split.

    Attributes
    ----------
    name : str
    source : str
        Where the labels were read: ``"waveforms"``, ``"embeddings/<model>"`` or ``"none"``.
    num_shards : int
    counts : np.ndarray [shape=(C,), dtype=int64]
        Committed clips per class.
    cardinality : np.ndarray
        ``cardinality[k]``: committed clips with k labels.
    top : np.ndarray
        The (at most 20) classes with the most clips, most first.
    cooccurrence : np.ndarray [shape=(len(top), len(top)), dtype=int64]
        Clips labelled with both classes (the diagonal: with the class).
    audio_seconds, delivered_seconds, loudness_dbfs : np.ndarray
        Real audio length of each clip of the waveform shards (``num_samples``; each is
        stored padded to ``clip_seconds``), delivered durations (ledger), sampled loudness.
    sample_rates : dict of int to int
        Committed clips by source sample rate.
    failures : dict of str to int
        Failed clips by reason (latest ledger row of each clip).
    requested : np.ndarray or None [shape=(C,)]
        Requested clips per class (None when no segments table names the split).
    requested_clips : int
    clip_seconds : float
        Length every waveform clip is stored at (the manifest's).
    """

    name: str
    source: str
    num_shards: int
    counts: np.ndarray
    cardinality: np.ndarray
    top: np.ndarray
    cooccurrence: np.ndarray
    audio_seconds: np.ndarray
    delivered_seconds: np.ndarray
    loudness_dbfs: np.ndarray
    sample_rates: dict[int, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    requested: np.ndarray | None = None
    requested_clips: int = 0
    clip_seconds: float = 0.0

    @property
    def num_clips(self) -> int:
        """Committed clips."""
        return int(self.cardinality.sum())

    def numbers(self) -> dict:
        """The split's headline numbers (JSON-ready).

        ``stored_hours`` is what the waveform shards hold (clips x ``clip_seconds``, padding
        included); ``audio_hours`` and ``median_audio_seconds`` the real audio in them
        (``num_samples``); ``median_delivered_seconds`` what the sources delivered (ledger).
        """
        n = self.num_clips
        labels = int(np.dot(np.arange(len(self.cardinality)), self.cardinality))
        return {
            "source": self.source,
            "shards": self.num_shards,
            "committed_clips": n,
            "requested_clips": self.requested_clips,
            "failed_clips": int(sum(self.failures.values())),
            "classes_with_clips": int(np.count_nonzero(self.counts)),
            "classes_without_clips": int(np.count_nonzero(self.counts == 0)),
            "labels_per_clip": round(labels / n, 3) if n else None,
            "unlabeled_clips": int(self.cardinality[0]) if len(self.cardinality) else 0,
            "stored_hours": round(len(self.audio_seconds) * self.clip_seconds / 3600, 3),
            "audio_hours": round(float(self.audio_seconds.sum()) / 3600, 3),
            "median_audio_seconds": _median(self.audio_seconds),
            "median_delivered_seconds": _median(self.delivered_seconds),
            "median_loudness_dbfs": _median(self.loudness_dbfs),
            "loudness_clips_measured": len(self.loudness_dbfs),
        }


def _median(values: np.ndarray) -> float | None:
    return round(float(np.median(values)), 3) if len(values) else None


def ledger_latest(store: DatasetStore) -> pd.DataFrame:
    """The ledger reduced to one row per clip (``ok`` beats failures, then the latest wins)."""
    columns = ["clip_id", "split", "status", "reason", "recorded_at"]
    columns += ["delivered_seconds", "source_sample_rate"]
    frame = read_ledger(store).select(columns).to_pandas()
    frame["ok"] = frame["status"] == STATUS_OK
    frame = frame.sort_values(["ok", "recorded_at"], kind="stable")
    return frame.drop_duplicates("clip_id", keep="last")


def requested_segments(store: DatasetStore) -> pa.Table:
    """Every run's requested segments (``split``, ``labels``), one row per (split, clip id)."""
    tables = [
        pq.read_table(io.BytesIO(store.read_bytes(f"segments/{name}")), columns=REQUESTED.names)
        .select(REQUESTED.names)
        .cast(REQUESTED)
        for name in store.listdir("segments")
        if name.endswith(".parquet") and ".tmp-" not in name
    ]
    if not tables:
        return REQUESTED.empty_table()
    table = pa.concat_tables(tables)
    keys = table.select(["split", "clip_id"]).to_pandas()
    return table.filter(pa.array(~keys.duplicated(keep="last").to_numpy()))


def _label_source(manifest: DatasetManifest, split: str) -> tuple[str, list[ShardSource]]:
    """Waveform shards of the split if any, else those of the first model that has the split."""
    if manifest.splits.get(split) and manifest.splits[split].shards:
        return "waveforms", split_shards(manifest, split, "waveforms")
    for model in sorted(manifest.embeddings):
        entry = manifest.embeddings[model].get(split)
        if entry and entry.shards:
            return f"embeddings/{model}", split_shards(manifest, split, "embeddings", model)
    return "none", []


def _cooccurrence(
    labels: SplitLabels, top: np.ndarray, num_classes: int, chunk: int = 1 << 16
) -> np.ndarray:
    """Clips labelled with both of each pair of ``top`` classes, as a dense (K, K) matrix.

    Clips having a top class are numbered densely and summed ``chunk`` clips at a time as a
    (chunk, K) membership matrix, so memory stays bounded whatever the number of clips.
    """
    k = len(top)
    slot = np.full(num_classes, -1, dtype=np.int64)
    slot[top] = np.arange(k)
    keep = slot[labels.classes] >= 0
    cols = slot[labels.classes[keep]]
    _, dense = np.unique(labels.global_row[keep], return_inverse=True)  # sorted: non-decreasing
    clips = int(dense[-1]) + 1 if len(dense) else 0
    out = np.zeros((k, k), dtype=np.int64)
    for start in range(0, clips, chunk):
        lo, hi = np.searchsorted(dense, [start, start + chunk])
        block = np.zeros((min(chunk, clips - start), k))
        block[dense[lo:hi] - start, cols[lo:hi]] = 1.0
        out += np.rint(block.T @ block).astype(np.int64)
    return out


def gather_split(
    store: DatasetStore,
    manifest: DatasetManifest,
    split: str,
    ledger: pd.DataFrame,
    segments: pa.Table,
    client: Runner,
    loudness_clips: int,
) -> SplitStats:
    """Compute the statistics of one split (shard reads run on ``client``)."""
    c = manifest.num_classes
    source, shards = _label_source(manifest, split)
    check_committed_sizes(store, [(s.path, s.committed_bytes) for s in shards])
    parts: list[ShardStats | None] = [None] * len(shards)
    items = [(store, s, c, loudness_clips) for s in shards]
    for pos, part in map_shards(shard_stats, items, client):
        parts[pos] = part
    labels = SplitLabels.combine(shards, [p.labels for p in parts])
    counts = np.bincount(labels.classes, minlength=c).astype(np.int64)
    per_clip = np.bincount(labels.global_row, minlength=labels.num_clips)
    ranked = np.argsort(-counts, kind="stable")
    top = ranked[: min(TOP_CLASSES, int(np.count_nonzero(counts)))]
    audio = [p.num_samples for p in parts if p.num_samples is not None]
    mine = ledger[ledger["split"] == split]
    committed = mine[mine["ok"]]
    failed = mine[~mine["ok"]]
    requested, requested_clips = None, 0
    wanted = segments.filter(pc.equal(segments.column("split"), split))
    if wanted.num_rows:
        flat = pc.list_flatten(wanted.column("labels")).to_numpy()
        known = flat[(flat >= 0) & (flat < c)].astype(np.int64)
        requested = np.bincount(known, minlength=c)
        requested_clips = wanted.num_rows
    return SplitStats(
        name=split,
        source=source,
        num_shards=len(shards),
        counts=counts,
        cardinality=np.bincount(per_clip, minlength=1),
        top=top,
        cooccurrence=_cooccurrence(labels, top, c),
        audio_seconds=(np.concatenate(audio) / manifest.sample_rate if audio else np.zeros(0)),
        delivered_seconds=committed["delivered_seconds"].dropna().to_numpy(dtype=np.float64),
        loudness_dbfs=np.concatenate([p.rms_dbfs for p in parts] or [np.zeros(0)]),
        sample_rates={
            int(rate): int(n)
            for rate, n in committed["source_sample_rate"].dropna().value_counts().items()
        },
        failures={
            str(reason): int(n)
            for reason, n in failed["reason"].fillna("unknown").value_counts().items()
        },
        requested=requested,
        requested_clips=requested_clips,
        clip_seconds=manifest.clip_seconds,
    )


# --------------------------------------------------------------------------- figures


def plot_class_counts(stats: SplitStats, names: Sequence[str]) -> str:
    """Clips per class, all classes by rank and the top classes by name, on log scales."""
    fig = figure(10.0, 4.0)
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    ranked = np.sort(stats.counts[stats.counts > 0])[::-1]
    left.bar(np.arange(1, len(ranked) + 1), ranked, width=1.0, color="tab:blue")
    left.set(yscale="log", xlabel="class rank", ylabel="clips", title="all classes with clips")
    top = stats.top[::-1]
    right.barh([shorten(names[i]) for i in top], stats.counts[top], color="tab:blue")
    right.set(xscale="log", xlabel="clips", title=f"top {len(top)} classes")
    right.tick_params(axis="y", labelsize=7)
    return png_base64(fig)


def plot_cardinality(stats: SplitStats) -> str:
    """Histogram of labels per clip."""
    fig = figure(6.0, 3.0)
    ax = fig.subplots()
    ax.bar(np.arange(len(stats.cardinality)), stats.cardinality, color="tab:green")
    ax.set(xlabel="labels per clip", ylabel="clips")
    return png_base64(fig)


def plot_cooccurrence(stats: SplitStats, names: Sequence[str]) -> str:
    """Heatmap of co-occurrence counts of the top classes (log colour scale)."""
    k = len(stats.top)
    fig = figure(4.0 + 0.3 * k, 3.0 + 0.3 * k)
    ax = fig.subplots()
    shown = np.ma.masked_equal(stats.cooccurrence, 0)
    image = ax.imshow(shown, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(2, shown.max())))
    labels = [shorten(names[i], 24) for i in stats.top]
    ax.set_xticks(np.arange(k), labels, rotation=90, fontsize=7)
    ax.set_yticks(np.arange(k), labels, fontsize=7)
    fig.colorbar(image, ax=ax, label="clips with both")
    return png_base64(fig)


def plot_durations(stats: SplitStats) -> str:
    """Histograms of the real audio lengths in the shards and delivered durations, in seconds."""
    fig = figure(7.0, 3.0)
    ax = fig.subplots()
    both = np.concatenate([stats.audio_seconds, stats.delivered_seconds])
    bins = np.histogram_bin_edges(both, bins=40)
    for values, label in (
        (stats.audio_seconds, "audio in the shards (num_samples)"),
        (stats.delivered_seconds, "delivered by the source (ledger)"),
    ):
        if len(values):
            ax.hist(values, bins=bins, alpha=0.6, label=f"{label}, n={len(values)}")
    ax.set(xlabel="seconds", ylabel="clips")
    ax.legend(fontsize=8)
    return png_base64(fig)


def plot_sample_rates(stats: SplitStats) -> str:
    """Committed clips by source sample rate."""
    fig = figure(6.0, 3.0)
    ax = fig.subplots()
    rates = sorted(stats.sample_rates)
    ax.bar([f"{r:,}" for r in rates], [stats.sample_rates[r] for r in rates], color="tab:purple")
    ax.set(xlabel="source sample rate (Hz)", ylabel="clips")
    ax.tick_params(axis="x", labelsize=8, rotation=45)
    return png_base64(fig)


def plot_loudness(stats: SplitStats) -> str:
    """Histogram of sampled clip loudness (RMS dBFS) with the median marked."""
    fig = figure(6.0, 3.0)
    ax = fig.subplots()
    ax.hist(stats.loudness_dbfs, bins=40, color="tab:orange")
    median = float(np.median(stats.loudness_dbfs))
    ax.axvline(median, color="black", linestyle="--", label=f"median {median:.1f} dBFS")
    ax.set(xlabel="RMS level (dBFS)", ylabel="clips")
    ax.legend(fontsize=8)
    return png_base64(fig)


def plot_failures(stats: SplitStats) -> str:
    """Failed clips by reason."""
    reasons = sorted(stats.failures, key=stats.failures.get)
    fig = figure(6.0, 1.2 + 0.3 * len(reasons))
    ax = fig.subplots()
    ax.barh(reasons, [stats.failures[r] for r in reasons], color="tab:red")
    ax.set(xlabel="clips")
    return png_base64(fig)


def plot_availability(stats: SplitStats) -> str:
    """Share of each class's requested clips that were committed, against requests."""
    requested = stats.requested
    asked = np.flatnonzero(requested > 0)
    share = stats.counts[asked] / requested[asked]
    fig = figure(7.0, 3.2)
    ax = fig.subplots()
    ax.scatter(requested[asked], share, s=10, alpha=0.7)
    overall = stats.counts[asked].sum() / requested[asked].sum()
    ax.axhline(overall, color="black", linestyle="--", label=f"all labels: {overall:.1%}")
    ax.set(xscale="log", xlabel="requested clips of the class", ylabel="committed / requested")
    ax.legend(fontsize=8)
    return png_base64(fig)


# --------------------------------------------------------------------------- HTML


def _split_html(stats: SplitStats, names: Sequence[str]) -> str:
    """The section of one split."""
    out = [f'<section id="split-{html.escape(stats.name)}">']
    out.append(f"<h2>Split {html.escape(stats.name)}</h2>")
    out.append(f"<p>labels read from {html.escape(stats.source)}</p>")
    has_clips = stats.num_clips > 0
    out.append("<h3>Class counts</h3>")
    if stats.counts.any():
        out.append(html_img(plot_class_counts(stats, names), f"class counts of {stats.name}"))
        empty = np.flatnonzero(stats.counts == 0)
        if len(empty):
            shown = NAMES_SEP.join(names[i] for i in empty[:20]) + (" …" if len(empty) > 20 else "")
            out.append(f"<p>{len(empty):,} classes without clips: {html.escape(shown)}</p>")
    else:
        out.append(html_note("No committed clip has a label."))
    out.append("<h3>Label cardinality</h3>")
    if has_clips:
        out.append(html_img(plot_cardinality(stats), "labels per clip"))
        rows = [[k, int(n)] for k, n in enumerate(stats.cardinality) if n]
        out.append(html_table(["labels per clip", "clips"], rows))
    else:
        out.append(html_note("No committed clips."))
    out.append("<h3>Co-occurrence of the top classes</h3>")
    if len(stats.top):
        out.append(html_img(plot_cooccurrence(stats, names), "co-occurrence of the top classes"))
    else:
        out.append(html_note("No labelled clips."))
    out.append("<h3>Clip durations</h3>")
    if len(stats.audio_seconds) or len(stats.delivered_seconds):
        out.append(html_img(plot_durations(stats), "clip durations"))
    else:
        out.append(
            html_note("No durations: no waveform shards and no committed clips in the ledger.")
        )
    out.append("<h3>Source sample rates</h3>")
    if stats.sample_rates:
        out.append(html_img(plot_sample_rates(stats), "source sample rates"))
        rates = sorted(stats.sample_rates.items())
        out.append(html_table(["source sample rate (Hz)", "clips"], rates))
    else:
        out.append(html_note("No source sample rates: the ledger records no committed clip."))
    out.append("<h3>Loudness</h3>")
    if len(stats.loudness_dbfs):
        out.append(html_img(plot_loudness(stats), "loudness"))
        q = np.percentile(stats.loudness_dbfs, [5, 50, 95]).round(1)
        out.append(
            f"<p>RMS level of {len(stats.loudness_dbfs):,} sampled clips: 5th percentile "
            f"{q[0]} dBFS, median {q[1]} dBFS, 95th percentile {q[2]} dBFS.</p>"
        )
    else:
        out.append(
            html_note("No loudness: the split has no waveform shards (or none was sampled).")
        )
    out.append("<h3>Failures by reason</h3>")
    if stats.failures:
        out.append(html_img(plot_failures(stats), "failures by reason"))
        out.append(html_table(["reason", "clips"], sorted(stats.failures.items())))
    else:
        out.append(html_note("No failures recorded in the ledger."))
    out.append("<h3>Availability against requested segments</h3>")
    if stats.requested is not None and stats.requested.any():
        out.append(html_img(plot_availability(stats), "availability per class"))
        asked = np.flatnonzero(stats.requested > 0)
        share_of = dict(zip(asked, stats.counts[asked] / stats.requested[asked], strict=True))
        worst = sorted(asked, key=share_of.get)[:WORST_AVAILABILITY_ROWS]
        rows = [
            [names[i], int(stats.requested[i]), int(stats.counts[i]), f"{share_of[i]:.1%}"]
            for i in worst
        ]
        out.append(f"<p>The {len(rows)} least available classes:</p>")
        out.append(html_table(["class", "requested", "committed", "available"], rows))
    else:
        out.append(html_note("No requested segments recorded for this split (segments/*.parquet)."))
    out.append("</section>")
    return "\n".join(out)


def render_html(
    title: str,
    facts: Sequence[tuple[str, object]],
    splits: Sequence[SplitStats],
    names: Sequence[str],
) -> str:
    """The whole report page."""
    numbers = {s.name: s.numbers() for s in splits}
    keys = list(next(iter(numbers.values()))) if numbers else []
    summary = html_table(
        ["", *numbers], [[k.replace("_", " "), *(numbers[s][k] for s in numbers)] for k in keys]
    )
    nav = " · ".join(
        f'<a href="#split-{html.escape(s.name)}">{html.escape(s.name)}</a>' for s in splits
    )
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            html_table(["", "value"], facts),
            "<h2>Summary</h2>",
            f"<p>{nav}</p>" if splits else html_note("The dataset has no splits yet."),
            summary,
            *(_split_html(s, names) for s in splits),
            "</body></html>",
        ]
    )


# --------------------------------------------------------------------------- entry point


def build_report(
    dataset: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    storage_options: dict | None = None,
    client: DaskClient = None,
    loudness_clips_per_shard: int = 8,
) -> str:
    """Write the dataset report (``index.html`` and ``summary.json``) and return its location.

    Parameters
    ----------
    dataset : str or os.PathLike
        Dataset directory or fsspec URL.
    out_dir : str or os.PathLike, optional
        Directory (or fsspec URL) to write the report to; None writes it into the dataset, at
        ``reports/dataset/``. Files are written atomically.
    storage_options : dict, optional
        fsspec options of the dataset's filesystem, and of ``out_dir``'s.
    client : distributed.Client, str or None
        Where the per-shard reads run; see :func:`features.class_index.dask_client`.
    loudness_clips_per_shard : int
        Clips per waveform shard whose loudness is measured (evenly spaced; 0 skips loudness).
        Only these rows of the ``waveform`` dataset are read, which bounds the report's I/O.

    Returns
    -------
    str
        Location of ``index.html``.

    Raises
    ------
    FileNotFoundError
        If ``dataset`` has no manifest.
    ValueError
        If a shard cannot be read, or the report cannot be written to ``out_dir``; the message
        names the file or directory.
    """
    store = DatasetStore(dataset, storage_options)
    manifest = load_manifest(store)
    if manifest is None:
        raise FileNotFoundError(f"{store.url()} has no manifest.json: not an audiomill dataset")
    target, prefix = (store, f"{REPORT_DIR}/")
    if out_dir is not None:
        target, prefix = DatasetStore(out_dir, storage_options), ""
        _check_report_dir(target)
    names = [f"class {i}" for i in range(manifest.num_classes)]
    if store.exists(CLASSES):
        class_map = ClassMap.from_csv_text(store.read_text(CLASSES), store.url(CLASSES))
        if len(class_map) == manifest.num_classes:
            names = class_map.display_names
    ledger = ledger_latest(store)
    segments = requested_segments(store)
    split_names = set(manifest.splits) | set(ledger["split"].unique())
    split_names |= {s for splits in manifest.embeddings.values() for s in splits}
    split_names |= set(segments.column("split").to_pylist())
    with dask_client(client) as active:
        splits = [
            gather_split(store, manifest, name, ledger, segments, active, loudness_clips_per_shard)
            for name in sorted(split_names)
        ]
    waves = [
        ("sample rate (Hz)", manifest.sample_rate),
        ("clip seconds", manifest.clip_seconds),
        ("waveform formats", ", ".join(manifest.formats) or "none"),
    ]
    runs = ", ".join(f"{stage}: {n}" for stage, n in runs_by_stage(manifest).items())
    facts = [
        ("dataset", store.url()),
        ("classes", manifest.num_classes),
        ("class map sha256", manifest.class_map_sha256[:16] + "…"),
        *(waves if has_waveforms(manifest) else [("waveforms", "none")]),
        ("embedding models", ", ".join(sorted(manifest.embeddings)) or "none"),
        ("runs", runs or "none"),
    ]
    page = render_html("audiomill dataset report", facts, splits, names)
    summary = {"dataset": store.url(), "splits": {s.name: s.numbers() for s in splits}}
    try:
        target.write_json_atomic(f"{prefix}summary.json", summary)
        target.write_bytes_atomic(f"{prefix}index.html", page.encode("utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot write the report to {target.url()}: {exc}") from exc
    return target.url(f"{prefix}index.html")


def _check_report_dir(target: DatasetStore) -> None:
    """Refuse a local report directory that cannot be written, before any shard is read.

    Raises
    ------
    ValueError
        If a file stands where the directory (or one of its parents) would be, or the nearest
        existing directory is not writable.
    """
    if not target.is_local:
        return
    path = nearest_existing(target.local_path())
    if not path.is_dir():
        reason = f"{path} is a file, not a directory"
    elif not os.access(path, os.W_OK | os.X_OK):
        reason = f"{path} is not writable"
    else:
        return
    raise ValueError(f"cannot write the report to {target.url()}: {reason}")

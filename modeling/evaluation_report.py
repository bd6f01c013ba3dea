"""Files of an evaluation: metrics.json, per_class.csv, scores.npz and an offline HTML report.

The report is one self-contained page: matplotlib figures drawn on Agg canvases (no pyplot
state) and embedded as base64 PNGs, in the style of the dataset report
(:mod:`features.report`). It shows the headline metrics, precision-recall curves of the
classes with the most positives, each class's AP against its number of positives (log x), the
run's training curves from ``RUN/history.jsonl`` (loss and the headline metric against the
step), the confusion matrix of single-label tasks with at most
:data:`MAX_CONFUSION_CLASSES` classes, and the per-class table.
"""

from __future__ import annotations

import csv
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from features.report_html import STYLE, figure, html_img, html_note, html_table, png_base64, shorten
from modeling.runs import json_bytes, write_all_atomic
from schemas.classmap import ClassMap

if TYPE_CHECKING:
    from modeling.evaluation import SplitScores

METRICS_JSON = "metrics.json"
PER_CLASS_CSV = "per_class.csv"
SCORES_NPZ = "scores.npz"
REPORT_HTML = "report.html"
PR_CLASSES = 8
"""Precision-recall curves drawn: the classes with the most positives."""
MAX_CONFUSION_CLASSES = 30
"""Largest single-label task whose confusion matrix is drawn."""
HEADLINE_KEYS = ("accuracy", "mAP", "mean_auc", "d_prime", "lwlrap")


def precision_recall_curve(
    targets: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of one class at every distinct score threshold, highest first.

    Parameters
    ----------
    targets : np.ndarray [shape=(N,), dtype=bool]
    scores : np.ndarray [shape=(N,)]

    Returns
    -------
    precision, recall : np.ndarray [shape=(K,), dtype=float64]
        When every clip scoring at least the k-th highest distinct score is retrieved (the
        points of ``sklearn.metrics.precision_recall_curve``, in the opposite order and
        without its final (recall 0, precision 1) point); empty if the class has no positive.
    """
    targets = np.asarray(targets, dtype=bool)
    positives = int(targets.sum())
    if not positives:
        return np.empty(0), np.empty(0)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    s, y = np.asarray(scores, dtype=np.float64)[order], targets[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]
    hits = np.cumsum(y)[last_of_group]
    retrieved = np.flatnonzero(last_of_group) + 1
    return hits / retrieved, hits / positives


# --------------------------------------------------------------------------- figures


def plot_pr_curves(scored: SplitScores, names: Sequence[str], ap: Sequence[Any]) -> str:
    """Step precision-recall curves of the :data:`PR_CLASSES` classes with most positives."""
    counts = scored.targets.sum(axis=0)
    top = [int(c) for c in np.argsort(-counts, kind="stable")[:PR_CLASSES] if counts[c] > 0]
    fig = figure(6.5, 4.5)
    ax = fig.subplots()
    for c in top:
        precision, recall = precision_recall_curve(scored.targets[:, c], scored.scores[:, c])
        label = f"{shorten(names[c], 24)} (AP {ap[c]:.3f}, n={int(counts[c])})"
        ax.step(np.r_[0.0, recall], np.r_[precision[0], precision], where="pre", label=label)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower left")
    return png_base64(fig)


def plot_ap_vs_frequency(rows: Sequence[dict[str, Any]]) -> str:
    """Each class's AP against its positives in the split (log x)."""
    kept = [r for r in rows if r["ap"] is not None]
    fig = figure(6.5, 3.5)
    ax = fig.subplots()
    ax.scatter([r["positives"] for r in kept], [r["ap"] for r in kept], s=12, alpha=0.7)
    mean = float(np.mean([r["ap"] for r in kept]))
    ax.axhline(mean, color="black", linestyle="--", label=f"mAP {mean:.3f}")
    ax.set(xscale="log", xlabel="positive clips of the class", ylabel="AP", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return png_base64(fig)


def plot_training_curves(history: Sequence[dict[str, Any]], metric: str) -> str:
    """Training loss and the evaluation's headline metric against the step."""
    steps = [h["step"] for h in history]
    fig = figure(9.0, 3.2)
    left, right = fig.subplots(1, 2)
    left.plot(steps, [h.get("loss") for h in history], marker="o", color="tab:red")
    left.set(xlabel="step", ylabel="training loss")
    points = [(h["step"], h[metric]) for h in history if h.get(metric) is not None]
    if points:
        right.plot(*zip(*points, strict=True), marker="o", color="tab:blue")
    right.set(xlabel="step", ylabel=f"evaluation {metric}")
    return png_base64(fig)


def plot_confusion(matrix: np.ndarray, names: Sequence[str]) -> str:
    """Confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    k = len(matrix)
    fig = figure(3.0 + 0.35 * k, 2.5 + 0.35 * k)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    labels = [shorten(n, 20) for n in names]
    ax.set_xticks(np.arange(k), labels, rotation=90, fontsize=7)
    ax.set_yticks(np.arange(k), labels, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                color = "white" if matrix[i, j] > threshold else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, label="clips")
    return png_base64(fig)


# --------------------------------------------------------------------------- HTML


def _number(value: Any) -> str:
    return "–" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def render_report(
    result: dict[str, Any],
    scored: SplitScores,
    classes: ClassMap,
    history: Sequence[dict[str, Any]],
) -> str:
    """The report page of an evaluation (see the module docstring)."""
    metrics = result["metrics"]
    names = classes.display_names
    title = f"Evaluation of {result['run']} on {result['split']}"
    facts = [
        ("run", result["run"]),
        ("dataset", result["dataset"]),
        ("split", result["split"]),
        ("model", f"{result['model']} on {result['input']} ({result['task']})"),
        ("weights", result["weights"]),
        ("test-time augmentation", f"{result['tta']} variants" if result["tta"] else "none"),
        ("clips", result["num_clips"]),
        *((k, _number(metrics[k])) for k in HEADLINE_KEYS if k in metrics),
        ("classes with a positive (mAP over)", metrics["num_classes_ap"]),
    ]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        html_table(["", "value"], facts),
        "<h2>Precision-recall curves</h2>",
    ]
    if metrics["num_classes_ap"]:
        parts.append(html_img(plot_pr_curves(scored, names, metrics["ap_per_class"]), "PR curves"))
        parts.append("<h2>AP against class frequency</h2>")
        parts.append(html_img(plot_ap_vs_frequency(result["per_class"]), "AP per class"))
    else:
        parts.append(html_note("No class has a positive clip in this split: AP is undefined."))
    parts.append("<h2>Training curves</h2>")
    if history:
        parts.append(html_img(plot_training_curves(history, result["headline"]), "training curves"))
    else:
        parts.append(html_note("The run has no history.jsonl."))
    matrix = metrics.get("confusion_matrix")
    if matrix is not None:
        parts.append("<h2>Confusion matrix</h2>")
        if len(matrix) <= MAX_CONFUSION_CLASSES:
            parts.append(html_img(plot_confusion(np.asarray(matrix), names), "confusion matrix"))
        else:
            parts.append(html_note(f"Not drawn for more than {MAX_CONFUSION_CLASSES} classes."))
    rows = rows_by_ap(result["per_class"])
    parts.append("<h2>Per class, by AP</h2>")
    parts.append(
        html_table(
            ["class", "mid", "positives", "AP", "AUC"],
            [
                [r["display_name"], r["mid"], r["positives"], _number(r["ap"]), _number(r["auc"])]
                for r in rows
            ],
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def rows_by_ap(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-class rows by AP, best first; classes without AP (no positive) last.

    Rows of equal AP keep their order (class index). ``rows`` as from
    :func:`modeling.evaluation.per_class_rows`.
    """
    return sorted(rows, key=lambda r: (r["ap"] is None, -(r["ap"] or 0.0)))


# --------------------------------------------------------------------------- files


def per_class_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``index,mid,display_name,positives,ap,auc`` text; undefined AP or AUC left empty."""
    buf = io.StringIO()
    fields = ["index", "mid", "display_name", "positives", "ap", "auc"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r[k] is None else r[k] for k in fields})
    return buf.getvalue()


def scores_npz(scored: SplitScores) -> bytes:
    """``clip_ids`` (N,) str, ``scores`` (N, C) float32 and ``targets`` (N, C) bool, as npz."""
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        clip_ids=np.array(scored.clip_ids, dtype=str),
        scores=scored.scores.astype(np.float32),
        targets=scored.targets.astype(bool),
    )
    return buf.getvalue()


def write_evaluation(
    out_dir: str | os.PathLike[str],
    result: dict[str, Any],
    scored: SplitScores,
    classes: ClassMap,
    history: Sequence[dict[str, Any]],
) -> dict[str, str]:
    """Write the four files of an evaluation under ``out_dir``, all or none.

    They replace an earlier evaluation's only once all four are written
    (:func:`modeling.runs.write_all_atomic`): a failed write (a full disk) leaves it whole.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Created if needed.
    result : dict
        From :func:`modeling.evaluation.evaluate_run` (``metrics.json`` is all of it but
        ``per_class`` and ``files``).
    scored : SplitScores
    classes : ClassMap
    history : list of dict
        The run's ``history.jsonl`` records.

    Returns
    -------
    dict
        File name -> path written.
    """
    out = Path(out_dir)
    metrics = {k: v for k, v in result.items() if k not in ("per_class", "files")}
    contents = {
        METRICS_JSON: json_bytes(metrics),
        PER_CLASS_CSV: per_class_csv(result["per_class"]).encode(),
        SCORES_NPZ: scores_npz(scored),
        REPORT_HTML: render_report(result, scored, classes, history).encode(),
    }
    write_all_atomic({out / name: data for name, data in contents.items()})
    return {name: str(out / name) for name in contents}

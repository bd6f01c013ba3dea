"""Steps of the quickstart workflow that are more than one command: embedding with the user's
VGGish files or seeded stand-ins, and the closing HTML summary."""

from __future__ import annotations

import csv
import html
import json
import os
from pathlib import Path
from typing import Any

from workflows.cli_common import console
from workflows.runner import invoke_audiomill


def _vggish_files(work: str, checkpoint: str, pca_params: str) -> tuple[str, str, bool]:
    """The VGGish checkpoint and PCA file to use, and whether they are the seeded stand-ins
    (written once under ``WORK/vggish``) because none were given."""
    if bool(checkpoint) != bool(pca_params):
        raise ValueError("give both checkpoint and pca_params, or neither")
    if checkpoint:
        return checkpoint, pca_params, False
    from features.vggish_seeded import write_seeded_vggish

    files = write_seeded_vggish(Path(work) / "vggish")
    return files["checkpoint"], files["pca_params"], True


def embed_demo(
    dataset: str, work: str, checkpoint: str = "", pca_params: str = "", workers: int = 2
) -> dict:
    """Run ``audiomill embed`` with the given VGGish files, or seeded ones when none are given.

    Parameters
    ----------
    dataset : str
    work : str
        Where seeded files are written (``WORK/vggish``).
    checkpoint, pca_params : str
        Google's ``vggish_model.ckpt`` and ``vggish_pca_params.npz``; both or neither.
    workers : int

    Returns
    -------
    dict
        ``seeded`` (bool) and the files used.
    """
    checkpoint, pca_params, seeded = _vggish_files(work, checkpoint, pca_params)
    if seeded:
        from features.vggish_seeded import SEEDED_NOTE

        console.print(f"[bold yellow]note:[/] {SEEDED_NOTE}", highlight=False)
    invoke_audiomill(
        "embed",
        dataset,
        "--checkpoint",
        checkpoint,
        "--pca-params",
        pca_params,
        "--workers",
        str(workers),
    )
    return {"seeded": seeded, "checkpoint": checkpoint, "pca_params": pca_params}


VALIDATION_LINKS = 12
"""Validation reports (the segment list's, then each shard's clips) the summary links by name;
the folder holding the rest is linked after them."""


def _link(href: Path, base: Path, text: str) -> str:
    rel = os.path.relpath(href, base)
    return f'<a href="{html.escape(rel)}">{html.escape(text)}</a>'


def _metric(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _predictions(
    runs: dict[str, str], files: list[Path], checkpoint: str, pca_params: str
) -> list[list[str]]:
    from modeling.evaluation import load_run
    from modeling.inference import predict_files, top_k

    rows = []
    for name, run in runs.items():
        loaded = load_run(run)
        found = predict_files(loaded, files, checkpoint=checkpoint, pca_params=pca_params)
        for path, prediction in zip(files, found, strict=True):
            top = top_k(prediction.scores, loaded.classes, 3)
            tags = ", ".join(f"{n} {s:.2f}" for n, _, s in top)
            rows.append([name, path.name, tags])
    return rows


def held_out_examples(demo_manifest: str, count: int = 3) -> list[Path]:
    """Pick audio files of the demo's ``eval`` split to tag: single-class clips of the first and
    last classes, then a two-class mixture, up to ``count`` files.

    Parameters
    ----------
    demo_manifest : str
        ``manifest.csv`` written by :func:`workflows.demo.make_demo`.
    count : int

    Returns
    -------
    list of Path
        Absolute paths, in the order described.
    """
    path = Path(demo_manifest)
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "eval"]
    if not rows:
        raise ValueError(f"{path}: no rows in the eval split to take examples from")
    singles = [r for r in rows if ";" not in r["labels"]]
    mixtures = [r for r in rows if ";" in r["labels"]]
    picked = ([singles[0], singles[-1]] if len(singles) > 1 else singles) + mixtures[:1]
    return [(path.parent / r["path"]).resolve() for r in picked[:count]]


def _searches(run: str, dataset: str, keywords: list[str]) -> list[list[str]]:
    from modeling.inference import search

    rows = []
    for keyword in keywords:
        result = search(run, dataset, "eval", keyword, top=3)
        for hit in result.hits:
            truth = "; ".join(hit.labels) or "(none)"
            rows.append([keyword, str(hit.rank), hit.clip_id, f"{hit.score:.3f}", truth])
    return rows


def write_summary(
    work: str,
    dataset: str,
    runs: dict[str, str],
    evaluations: dict[str, str],
    demo_manifest: str,
    keywords: list[str],
    checkpoint: str = "",
    pca_params: str = "",
) -> dict:
    """Write ``WORK/summary.html``: the dataset, every report, the models' metrics, and a few
    ``predict`` and ``search`` results.

    Parameters
    ----------
    work : str
        The quickstart's output folder.
    dataset : str
    runs : dict
        Training runs by display name; the first must be an embedding run (it serves search).
    evaluations : dict
        Evaluation folders by the same names.
    demo_manifest : str
        The demo's ``manifest.csv``: held-out clips from it are tagged with every run
        (:func:`held_out_examples`).
    keywords : list of str
        Searched in the eval split with the first run.
    checkpoint, pca_params : str
        VGGish files of the embedding run (seeded stand-ins when empty, as ``embed_demo``).

    Returns
    -------
    dict
        ``summary`` (path) and ``clips``.
    """
    from features.report_html import STYLE, html_table
    from features.vggish_seeded import SEEDED_NOTE
    from pipelines.dataset_tools import dataset_info

    base = Path(work)
    checkpoint, pca_params, seeded = _vggish_files(work, checkpoint, pca_params)
    info = dataset_info(dataset)
    parts = ["<!doctype html><meta charset='utf-8'><title>audiomill quickstart</title>"]
    parts.append(f"<style>{STYLE}</style><h1>audiomill quickstart</h1>")
    if seeded:
        parts.append(f"<p><strong>Note:</strong> {html.escape(SEEDED_NOTE)}</p>")
    parts.append("<h2>Dataset</h2>")
    split_rows = [
        [
            name,
            s["clips"],
            s["shards"],
            s["failed"],
            ", ".join(f"{k}: {v}" for k, v in s["failures_by_reason"].items()),
        ]
        for name, s in info["splits"].items()
    ]
    parts.append(
        html_table(["split", "clips", "shards", "failed", "failures by reason"], split_rows)
    )
    links = [_link(base / "report" / "index.html", base, "dataset report")]
    reports = Path(dataset) / "reports" / "validation"
    validation = sorted(reports.rglob("*.html"))
    shown = validation[:VALIDATION_LINKS]
    for page in shown:
        links.append(_link(page, base, f"validation: {page.relative_to(reports).with_suffix('')}"))
    if len(validation) > len(shown):
        more = f"{len(validation) - len(shown)} more validation reports"
        links.append(_link(reports, base, more))
    parts.append("<p>" + " · ".join(links) + "</p>")
    parts.append("<h2>Models</h2>")
    head = "".join(f"<th>{h}</th>" for h in ("run", "mAP", "mean AUC", "lwlrap", "", "run"))
    body = []
    for name, run in runs.items():
        metrics = json.loads((Path(evaluations[name]) / "metrics.json").read_text())["metrics"]
        cells = [html.escape(name)]
        cells += [_metric(metrics.get(k)) for k in ("mAP", "mean_auc", "lwlrap")]
        cells.append(_link(Path(evaluations[name]) / "report.html", base, "evaluation report"))
        cells.append(_link(Path(run), base, str(run)))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")
    parts.append("<h2>audiomill predict</h2>")
    example_files = held_out_examples(demo_manifest)
    parts.append("<p>Held-out clips of the eval split, tagged by each run.</p>")
    parts.append(
        html_table(
            ["run", "file", "top 3 tags"], _predictions(runs, example_files, checkpoint, pca_params)
        )
    )
    parts.append("<h2>audiomill search (eval split)</h2>")
    first = next(iter(runs.values()))
    parts.append(
        html_table(
            ["keyword", "rank", "clip", "score", "true labels"], _searches(first, dataset, keywords)
        )
    )
    out = base / "summary.html"
    out.write_text("\n".join(parts) + "\n")
    console.print(f"[bold green]summary:[/] open {out}", highlight=False)
    return {"summary": str(out), "clips": info["clips"]}

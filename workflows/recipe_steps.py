"""Steps of the dataset-recipe workflows (``workflows/recipes/*.yaml``) that are more than one
command: evaluating the best run of a sweep, and recording a sweep's time to solution."""

from __future__ import annotations

import json
import math
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workflows.cli_common import console
from workflows.runner import invoke_audiomill

# Metrics copied from an evaluation's metrics.json into the workflow's summary, when present.
SUMMARY_METRICS = ("mAP", "mean_auc", "d_prime", "lwlrap", "accuracy")


def _plain(value: Any) -> Any:
    """A JSON-safe number (NaN and infinities as None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def load_sweep(sweep: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of ``SWEEP/sweep.json``, best setting first (as ``audiomill sweep`` wrote them).

    Raises
    ------
    FileNotFoundError
        If the sweep has not written its table.
    ValueError
        If the table is empty.
    """
    path = Path(sweep) / "sweep.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no sweep table; run `audiomill sweep --out {sweep}`")
    rows = json.loads(path.read_text(encoding="utf-8"))
    if not rows:
        raise ValueError(f"{path} lists no settings")
    return rows


def evaluate_best(
    sweep: str, dataset: str, split: str, out: str, tta: int = 0, batch_size: int = 64
) -> dict[str, Any]:
    """Run ``audiomill evaluate`` on the best run of a sweep without folds.

    The best setting is the first row of ``SWEEP/sweep.json`` (highest mean of the headline
    metric); its run is ``SWEEP/<setting>/all``.

    Parameters
    ----------
    sweep : str
        The sweep's ``--out`` folder.
    dataset, split, out, tta, batch_size
        As for ``audiomill evaluate``.

    Returns
    -------
    dict
        ``clips``, ``setting``, ``lr``, ``mixup`` and the metrics of :data:`SUMMARY_METRICS`
        the evaluation computed (for the workflow's summary and records).

    Raises
    ------
    ValueError
        If the sweep ran folds (its runs are not named ``all``).
    """
    best = load_sweep(sweep)[0]
    if best.get("folds") != ["all"]:
        raise ValueError(
            f"{sweep} is a cross-validation sweep (folds {best.get('folds')}); evaluate_best "
            "takes a sweep without --folds or --fold-split"
        )
    run = Path(sweep) / best["setting"] / "all"
    console.print(
        f"best setting of {sweep}: [bold]{best['setting']}[/] (mean {best['mean']}); "
        f"evaluating {run}",
        highlight=False,
        soft_wrap=True,
    )
    invoke_audiomill("evaluate", str(run), dataset, "--split", split, "--out", out,
            "--tta", str(tta), "--batch-size", str(batch_size))  # fmt: skip
    metrics = json.loads((Path(out) / "metrics.json").read_text(encoding="utf-8"))
    summary: dict[str, Any] = {
        "clips": metrics.get("num_clips"),
        "setting": best["setting"],
        "lr": best.get("lr"),
        "mixup": best.get("mixup"),
        "run": str(run),
    }
    for key in SUMMARY_METRICS:
        if key in metrics.get("metrics", {}):
            summary[key] = _plain(metrics["metrics"][key])
    return summary


def _cpu_name() -> str:
    """The CPU's model name where the system says it (Linux), else its architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def visible_devices() -> dict[str, Any]:
    """The devices TensorFlow trains on here: GPU names and count, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = []
    for gpu in gpus:
        try:
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name", ""))
        except (ValueError, RuntimeError):
            names.append(gpu.name)
    return {
        "gpus": len(gpus),
        "gpu_names": names,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "kind": f"{len(gpus)} GPU" + ("s" if len(gpus) > 1 else "") if gpus else "CPU",
    }


def time_to_solution(state: str, stage: str, sweep: str, out: str) -> dict[str, Any]:
    """Record how long a workflow's sweep stage took, on what, and the score it reached.

    Reads the stage's completion record (its ``seconds``) from the workflow's state file and
    the sweep's table, and writes ``out`` (JSON): ``seconds``, ``devices``
    (:func:`visible_devices`), the best setting with its mean and spread over the folds, and
    the number of runs. Run the workflow once with ``CUDA_VISIBLE_DEVICES=`` (CPU) and once on
    GPUs, each with its own ``work`` folder, to compare.

    Parameters
    ----------
    state : str
        The workflow's state file (``state:`` of the YAML).
    stage : str
        Name of the sweep stage.
    sweep : str
        The sweep's ``--out`` folder.
    out : str
        JSON file to write.

    Returns
    -------
    dict
        ``seconds``, ``device`` (kind), ``setting`` and ``mean`` / ``std`` of the best setting.

    Raises
    ------
    ValueError
        If the state file holds no finished record of ``stage``.
    """
    records = json.loads(Path(state).read_text(encoding="utf-8")).get("stages", {})
    record = records.get(stage)
    if not record or record.get("status") != "finished":
        raise ValueError(f"{state} holds no finished record of stage {stage!r}")
    rows = load_sweep(sweep)
    best = rows[0]
    devices = visible_devices()
    body = {
        "stage": stage,
        "seconds": record["seconds"],
        "started": record.get("started"),
        "finished": record.get("finished"),
        "devices": devices,
        "runs": sum(len(r["folds"]) for r in rows),
        "folds": best["folds"],
        "best": {k: _plain(best.get(k)) for k in ("setting", "lr", "mixup", "mean", "std")},
        "per_fold": [_plain(v) for v in best["values"]],
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    mean = body["best"]["mean"]
    console.print(
        f"time to solution: {record['seconds']:.1f} s on {devices['kind']} for "
        f"{body['runs']} runs; best {best['setting']} mean "
        f"{'-' if mean is None else f'{mean:.4f}'} -> {path}",
        highlight=False,
        soft_wrap=True,
    )
    return {
        "seconds": record["seconds"],
        "device": devices["kind"],
        "setting": best["setting"],
        "mean": mean,
        "std": body["best"]["std"],
    }

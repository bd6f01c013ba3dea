"""Helpers for the ingest end-to-end tests: run the CLI, read back datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a child ``audiomill`` process (no analytics, quiet TF)."""
    env = dict(os.environ)
    env.update(GX_ANALYTICS_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def audiomill(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``audiomill ARGS`` in a child process and return the completed process."""
    proc = subprocess.run(
        [sys.executable, "-m", "workflows", *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"audiomill {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"
        )
    return proc


def manifest(dataset: Path) -> dict:
    """The dataset's manifest.json."""
    return json.loads((dataset / "manifest.json").read_text())


def ledger(dataset: Path, split: str = "train") -> dict[str, dict]:
    """One ledger row per clip (ok beats failures, then latest)."""
    from schemas.ledger import latest_rows

    table = pq.read_table(dataset / "ledger" / split)
    return latest_rows(table)


def hdf5_clips(dataset: Path, split: str = "train") -> dict[str, dict]:
    """clip_id -> {target, num_samples, waveform, shard} for every committed HDF5 row."""
    out: dict[str, dict] = {}
    for shard in manifest(dataset)["splits"][split]["shards"]:
        with h5py.File(dataset / shard["files"]["hdf5"]["path"], "r") as hf:
            ids = hf["clip_id"].asstr()[:]
            for i, clip_id in enumerate(ids):
                assert clip_id not in out, f"{clip_id} in two shards"
                out[clip_id] = {
                    "labels": np.flatnonzero(hf["target"][i]).tolist(),
                    "num_samples": int(hf["num_samples"][i]),
                    "waveform": hf["waveform"][i],
                    "audio_name": hf["audio_name"][i].decode(),
                    "shard": shard["index"],
                }
    return out

"""``audiomill embed`` and ``embed-files``: one Dask task per shard, alignment, resume."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from features.embed import EmbedSummary
from features.quiet_tensorflow import NATIVE_INFO_LINE
from features.vggish_frontend import batch_waveform_to_examples, waveform_to_examples
from pipelines.audio import decode, to_mono
from pipelines.clip_stage import ClipSettings, stage_clip
from pipelines.dataset_state import adopt_commits, load_manifest, save_manifest
from pipelines.fetch import FetchOptions
from pipelines.pack import PackSettings, pack_shard
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.dataset import CLASSES, DatasetManifest
from schemas.embeddings import read_embedding_hdf5, read_embedding_parquet
from tests.ingest_helpers import audiomill, cli_env
from tests.media import write_media
from tests.vggish_fixtures import random_weights, write_pca, write_slim_checkpoint

SR, CLIP_S = 16000, 2.5
CLASSES_MAP = ClassMap.from_names(["low", "high"])


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> tuple[str, str]:
    """A VGGish checkpoint and PCA file in Google's formats, with seeded random values."""
    root = tmp_path_factory.mktemp("vggish")
    ckpt = write_slim_checkpoint(root / "vggish_model.ckpt", random_weights(0))
    write_pca(root / "vggish_pca_params.npz")
    return ckpt, str(root / "vggish_pca_params.npz")


def _dataset(root: Path, clips: dict[str, list[tuple[float, float, int]]]) -> Path:
    """Ingest tones (seconds, freq, label) per split without Beam: stage, pack, adopt."""
    out = root / "ds"
    store = DatasetStore(str(out))
    store.write_bytes_atomic(CLASSES, CLASSES_MAP.to_csv_text().encode())
    manifest = DatasetManifest(CLASSES_MAP.sha256, 2, SR, CLIP_S, ["hdf5"])
    settings = ClipSettings(SR, CLIP_S, 0.5, FetchOptions(limiter_state=str(root / "rl")))
    pack = PackSettings(("hdf5", "parquet"), SR, CLIP_S, 2, CLASSES_MAP.sha256, "run-1",
                        min_coverage=0.5)  # fmt: skip
    for split, specs in clips.items():
        ids = []
        for i, (secs, freq, label) in enumerate(specs):
            path = write_media(root / "audio" / f"{split}{i}.wav", secs, 22050, 2, freq, i)
            item = {"clip_id": f"{split}{i}_0", "split": split, "location": str(path),
                    "precut": False, "start_s": None, "end_s": None, "labels": [label],
                    "audio_name": f"{split}{i}_0", "origin": "test", "line": i + 1}  # fmt: skip
            assert stage_clip(item, store, settings, str(root))["status"] == "ok"
            ids.append(item["clip_id"])
        for index, start in enumerate(range(0, len(ids), 2)):
            pack_shard(split, index, ids[start : start + 2], store, pack)
        adopt_commits(store, manifest, split)
    save_manifest(store, manifest)
    return out


def _expected(dataset: Path, split: str, weights) -> dict[str, np.ndarray]:
    from features.vggish_model import VGGishEmbedder

    embedder = VGGishEmbedder(*weights)
    out = {}
    for shard in load_manifest(DatasetStore(str(dataset))).splits[split].shards:
        with h5py.File(dataset / shard.files["hdf5"].path) as hf:
            waves, ids = hf["waveform"][:], list(hf["clip_id"].asstr()[:])
            lengths = hf["num_samples"][:]
        examples = batch_waveform_to_examples(waves, SR, mode="fast", resampler="soxr")
        _, q = embedder.embed(examples.reshape(-1, 96, 64))
        q = q.reshape(len(waves), -1, 128)[:, :2]
        for clip_id, x, n in zip(ids, q, lengths, strict=True):
            x = x.copy()
            x[int(n / SR / 0.96) :] = 0
            out[clip_id] = x
    return out


@pytest.mark.slow
def test_embed_cli_row_aligned_resumable(tmp_path: Path, weights):
    ds = _dataset(tmp_path, {"train": [(2.5, 300, 0), (1.2, 2000, 1), (2.5, 900, 0)],
                             "eval": [(2.0, 1500, 1)]})  # fmt: skip
    args = ["embed", str(ds), "--checkpoint", weights[0], "--pca-params", weights[1],
            "--workers", "2", "--format", "hdf5,parquet", "--batch-size", "8"]  # fmt: skip
    env = cli_env()
    del env["TF_CPP_MIN_LOG_LEVEL"]  # the command quiets TensorFlow itself, in its workers too
    proc = audiomill(*args, env=env)
    assert "shards embedded" in proc.stderr
    assert not [line for line in proc.stderr.splitlines() if NATIVE_INFO_LINE.match(line.encode())]
    embedded = re.search(r"shards embedded +│ (\d+) ", proc.stderr)
    devices = re.search(r"devices +│ (CPU|GPU:0) \((\d+) shards?\) ", proc.stderr)
    assert embedded and devices and devices[2] == embedded[1], proc.stderr
    manifest = load_manifest(DatasetStore(str(ds)))
    want = _expected(ds, "train", weights)
    for split in ("train", "eval"):
        wave_shards = manifest.splits[split].shards
        emb_shards = manifest.embeddings["vggish"][split].shards
        assert [s.index for s in emb_shards] == [s.index for s in wave_shards]
        for ws, es in zip(wave_shards, emb_shards, strict=True):
            with h5py.File(ds / ws.files["hdf5"].path) as hf:
                wave_ids, target = list(hf["clip_id"].asstr()[:]), hf["target"][:]
            rows, attrs = read_embedding_hdf5(ds / es.files["hdf5"].path)
            assert rows.clip_ids == wave_ids
            assert (rows.y == target).all()
            assert rows.x.shape[1:] == (2, 128) and rows.x.dtype == np.uint8
            (prows,) = read_embedding_parquet(ds / es.files["parquet"].path, 2)
            assert (prows.x == rows.x).all() and prows.clip_ids == rows.clip_ids
            assert json.loads(attrs["frontend"])["resampler"] == "soxr HQ"
            if split == "train":
                for clip_id, x in zip(rows.clip_ids, rows.x, strict=True):
                    np.testing.assert_array_equal(x, want[clip_id])
    short = read_embedding_hdf5(ds / manifest.embeddings["vggish"]["train"].shards[0]
                                .files["hdf5"].path)[0]  # fmt: skip
    assert short.num_frames.tolist() == [2, 1]
    assert (short.x[1, 1] == 0).all() and short.x[1, 0].any()
    assert manifest.stages["embed:vggish"]["completed"]

    again = audiomill(*args)
    assert "shards already done" in again.stderr
    assert load_manifest(DatasetStore(str(ds))).embeddings == manifest.embeddings

    other_pca = tmp_path / "other_pca.npz"
    write_pca(other_pca, seed=1)
    refused = audiomill("embed", str(ds), "--checkpoint", weights[0], "--pca-params",
                        str(other_pca), check=False)  # fmt: skip
    assert refused.returncode == 2 and "another pca" in refused.stderr.lower()


def test_damaged_waveform_shard_is_one_line_naming_it(tmp_path: Path, weights):
    ds = _dataset(tmp_path, {"train": [(2.5, 300, 0), (2.5, 900, 1)]})
    shard = ds / load_manifest(DatasetStore(str(ds))).splits["train"].shards[0].files["hdf5"].path
    shard.write_bytes(shard.read_bytes()[:-2000])
    proc = audiomill("embed", str(ds), "--checkpoint", weights[0], "--pca-params", weights[1],
                     "--workers", "1", check=False)  # fmt: skip
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" not in proc.stderr, proc.stderr
    size = shard.stat().st_size
    assert f"{shard} is {size:,} bytes, not {size + 2000:,}" in " ".join(proc.stderr.split())
    assert not load_manifest(DatasetStore(str(ds))).embeddings.get("vggish", {}).get("train")


@pytest.mark.slow
def test_embed_against_a_distributed_scheduler_on_loopback(tmp_path: Path, weights):
    ds = _dataset(tmp_path, {"train": [(2.5, 300, 0), (2.5, 2000, 1), (2.5, 700, 1)]})
    env = cli_env()
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]  # fmt: skip
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                 "1", "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        proc = audiomill("embed", str(ds), "--checkpoint", weights[0], "--pca-params",
                         weights[1], "--scheduler", address)  # fmt: skip
        assert "shards embedded" in proc.stderr
        idx = audiomill("index", str(ds), "--scheduler", address, "--json")
        assert json.loads(idx.stdout)[0]["num_clips"] == 3
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    emb = load_manifest(DatasetStore(str(ds))).embeddings["vggish"]["train"]
    assert sum(s.num_clips for s in emb.shards) == 3


@pytest.mark.slow
def test_embed_files_npz_and_parquet(tmp_path: Path, weights):
    a = write_media(tmp_path / "a.flac", 3.0, 44100, 2, 500)
    b = write_media(tmp_path / "b.ogg", 1.5, 22050, 1, 1200)
    out = tmp_path / "emb.npz"
    audiomill("embed-files", str(a), str(b), "--checkpoint", weights[0], "--pca-params",
              weights[1], "--out", str(out), "--mode", "exact")  # fmt: skip
    with np.load(out) as npz:
        assert npz["embedding"].shape == (4, 128) and npz["embedding"].dtype == np.uint8
        assert npz["file_index"].tolist() == [0, 0, 0, 1]
        assert npz["start_s"].tolist() == pytest.approx([0, 0.96, 1.92, 0])
        quantized = npz["embedding"]
    from features.vggish_model import VGGishEmbedder

    audio = decode(str(a))
    examples = waveform_to_examples(to_mono(audio.samples), audio.sample_rate, mode="exact")
    _, want = VGGishEmbedder(*weights).embed(examples)
    np.testing.assert_array_equal(quantized[:3], want)
    pq_out = tmp_path / "emb.parquet"
    audiomill("embed-files", str(a), "--checkpoint", weights[0], "--pca-params", weights[1],
              "--out", str(pq_out), "--mode", "exact")  # fmt: skip
    import pyarrow.parquet as pq

    table = pq.read_table(pq_out)
    assert table.num_rows == 3
    np.testing.assert_array_equal(np.stack(table.column("embedding").to_numpy(
        zero_copy_only=False)), want)  # fmt: skip
    bad = audiomill("embed-files", str(tmp_path / "nope.wav"), "--checkpoint", weights[0],
                    "--pca-params", weights[1], "--out", str(out), check=False)  # fmt: skip
    assert bad.returncode == 2 and "nope.wav" in bad.stderr


def test_summary_describes_the_devices_busiest_first():
    summary = EmbedSummary("r", 9, 0, 90, 1.0, "c", "p", devices={"CPU": 3, "GPU:0": 5, "X": 1})
    assert summary.describe_devices() == "GPU:0 (5 shards), CPU (3 shards), X (1 shard)"
    assert dataclasses.replace(summary, devices={}).describe_devices() == ""


def test_only_local_cluster_workers_exit_without_collecting():
    from distributed import Client, LocalCluster

    from features.embed import _in_local_worker_process

    assert not _in_local_worker_process()  # this process: not a worker
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        assert client.submit(_in_local_worker_process, pure=False).result() is True
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):  # a worker thread in this process: the process is the user's
        assert client.submit(_in_local_worker_process, pure=False).result() is False

"""Embedding throughput: ``audiomill embed`` clips/s and the model's FLOP/s against a roofline.

In one run:

``roofline``
    plain TensorFlow ``conv2d`` (3x3, 128 -> 256 channels on 24 x 16 maps, the shape of
    VGGish's conv3) and ``matmul`` (batch x 12288 x 4096, fc1) FLOP/s in this process;
``model``
    the VGGish forward pass (1.73 GFLOP per 0.96 s example) in FLOP/s on batches of examples,
    as a fraction of the roofline;
``embed``
    ``audiomill embed`` on a dataset of N ten-second clips with 2 Dask worker processes,
    end to end (cluster start, model load per worker, front end, forward pass, shard commits).

Weights are random (the published checkpoint cannot be downloaded here): speed does not depend
on the values.

Usage::

    python benchmarks/embed_bench.py --clips 64 --workdir /tmp/embed-bench
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from features.vggish_seeded import write_seeded_vggish  # noqa: E402

CONV_FLOPS = [  # (H, W, Cin, Cout) of each conv at its input resolution
    (96, 64, 1, 64), (48, 32, 64, 128), (24, 16, 128, 256), (24, 16, 256, 256),
    (12, 8, 256, 512), (12, 8, 512, 512),
]  # fmt: skip
FC_FLOPS = [(12288, 4096), (4096, 4096), (4096, 128)]


def model_flops_per_example() -> float:
    """Multiply-adds x 2 of one VGGish forward pass."""
    conv = sum(2 * h * w * 9 * cin * cout for h, w, cin, cout in CONV_FLOPS)
    return conv + sum(2 * a * b for a, b in FC_FLOPS)


def _best_rate(fn, flops: float, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return flops / best


def roofline(batch: int) -> dict:
    """FLOP/s of the model's dominant conv and matmul shapes in plain TensorFlow."""
    x = tf.random.normal((batch, 24, 16, 128))
    k = tf.random.normal((3, 3, 128, 256))
    conv = tf.function(lambda: tf.nn.conv2d(x, k, 1, "SAME"))
    a, b = tf.random.normal((batch, 12288)), tf.random.normal((12288, 4096))
    mm = tf.function(lambda: tf.matmul(a, b))
    return {
        "conv2d_flops": _best_rate(lambda: conv().numpy(), 2 * batch * 24 * 16 * 9 * 128 * 256),
        "matmul_flops": _best_rate(lambda: mm().numpy(), 2 * batch * 12288 * 4096),
    }


def model_rate(ckpt: str, pca: str, batch: int) -> dict:
    """FLOP/s of the VGGish forward pass on ``batch`` examples."""
    from features.vggish_model import VGGishEmbedder

    embedder = VGGishEmbedder(ckpt, pca, batch_size=batch)
    examples = np.random.default_rng(0).normal(size=(batch, 96, 64)).astype(np.float32)
    flops = model_flops_per_example() * batch
    rate = _best_rate(lambda: embedder.raw(examples), flops)
    return {"flops": rate, "examples_per_s": rate / model_flops_per_example()}


def embed_run(workdir: Path, ckpt: str, pca: str, clips: int) -> dict:
    """``audiomill embed`` end to end on a dataset of ``clips`` ten-second clips."""
    dataset = workdir / f"dataset-{clips}"
    if not dataset.exists():
        _make_waveform_dataset(dataset, clips)
    subprocess.run(["rm", "-rf", str(dataset / "embeddings")], check=True)
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["embeddings"] = {}
    manifest["stages"].pop("embed:vggish", None)
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "workflows", "embed", str(dataset), "--checkpoint", ckpt,
         "--pca-params", pca, "--workers", "2", "--batch-size", "64"],
        check=True, capture_output=True, cwd=REPO,
    )  # fmt: skip
    secs = time.perf_counter() - start
    return {"clips": clips, "seconds": secs, "clips_per_s": clips / secs}


def _make_waveform_dataset(root: Path, clips: int, shard_clips: int = 16) -> None:
    from pipelines.dataset_state import save_manifest
    from pipelines.shard_writers import HDF5ShardWriter, ShardRow
    from pipelines.storage import DatasetStore
    from schemas.classmap import ClassMap
    from schemas.dataset import CLASSES, DatasetManifest, ShardEntry, ShardFile

    sr, secs = 16000, 10.0
    store = DatasetStore(str(root))
    cmap = ClassMap.from_names(["a", "b"])
    store.write_bytes_atomic(CLASSES, cmap.to_csv_text().encode())
    manifest = DatasetManifest(cmap.sha256, 2, sr, secs, ["hdf5"])
    rng = np.random.default_rng(0)
    for index, start in enumerate(range(0, clips, shard_clips)):
        ids = [f"c{i}" for i in range(start, min(clips, start + shard_clips))]
        local = root / f"tmp-{index}.h5"
        rows = [ShardRow(clip_id, clip_id, (i % 2,), None) for i, clip_id in enumerate(ids)]
        writer = HDF5ShardWriter(str(local), rows, num_samples=int(sr * secs), num_classes=2,
                                 sample_rate=sr)  # fmt: skip
        for _ in ids:
            wave = (rng.normal(size=int(sr * secs)) * 3000).astype(np.int16)
            writer.add(wave, len(wave))
        writer.close()
        rel = f"waveforms/train/shard-{index:05d}.h5"
        rec = store.commit_file(str(local), rel)
        manifest.split("train").shards.append(
            ShardEntry(
                index,
                len(ids),
                {"hdf5": ShardFile(rel, rec.sha256, rec.bytes)},
                "bench",
                hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            )
        )
    save_manifest(store, manifest)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/audiomill-embed-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    files = write_seeded_vggish(args.workdir)
    ckpt, pca = files["checkpoint"], files["pca_params"]
    roof = roofline(args.batch)
    model = model_rate(ckpt, pca, args.batch)
    result = {
        "flops_per_example": model_flops_per_example(),
        "roofline": roof,
        "model": model,
        "model_over_conv2d": model["flops"] / roof["conv2d_flops"],
        "model_over_best": model["flops"] / max(roof.values()),
        "embed": embed_run(args.workdir, ckpt, pca, args.clips),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

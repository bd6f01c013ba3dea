"""Every stage on an ``s3://`` dataset: embed, index, train and evaluate against SeaweedFS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.vggish_seeded import write_seeded_vggish
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from tests.ingest_helpers import audiomill
from tests.s3_server import S3Server
from tests.test_embed import _dataset


@pytest.mark.slow
def test_embed_index_train_evaluate_on_an_object_store(s3_server: S3Server, tmp_path: Path):
    local = _dataset(
        tmp_path,
        {
            "train": [(2.5, 300, 0), (2.5, 2000, 1), (2.5, 400, 0), (2.5, 1800, 1)],
            "eval": [(2.5, 350, 0), (2.5, 1900, 1)],
        },
    )
    url = f"s3://{s3_server.create_bucket()}/ds"
    s3_server.filesystem().put(str(local) + "/", url, recursive=True)
    so = ["--storage-options", json.dumps(s3_server.storage_options)]
    vggish = write_seeded_vggish(tmp_path / "vggish")

    audiomill("embed", url, "--checkpoint", vggish["checkpoint"], "--pca-params",
              vggish["pca_params"], "--workers", "1", *so)  # fmt: skip
    manifest = load_manifest(DatasetStore(url, s3_server.storage_options))
    assert manifest.embeddings["vggish"]["train"].num_clips == 4
    index = audiomill("index", url, "--split", "train", "--json", *so)
    assert json.loads(index.stdout)[0]["num_clips"] == 4

    run = tmp_path / "run"
    audiomill("train", url, "--out", str(run), "--steps", "4", "--eval-every", "2",
              "--batch-size", "2", "--model-arg", "hidden=8", *so)  # fmt: skip
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [2, 4] and history[-1]["num_samples"] == 2
    config = json.loads((run / "run.json").read_text())
    assert config["dataset"] == url

    audiomill("evaluate", str(run), url, "--split", "eval", "--out", str(tmp_path / "ev"), *so)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["num_clips"] == 2

    hits = json.loads(audiomill("search", str(run), url, "HIGH", "--split", "eval", "--json",
                                *so).stdout)  # fmt: skip
    assert {h["clip_id"] for h in hits["hits"]} == {"eval0_0", "eval1_0"}
    scored = json.loads(audiomill("predict", str(run), "eval1_0", "--dataset", url, "--top-k",
                                  "1", "--json", *so).stdout)  # fmt: skip
    assert scored[0]["input"] == "eval1_0" and len(scored[0]["top"]) == 1

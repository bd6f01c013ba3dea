"""``embed --scheduler``: relative weight paths reach workers that run in another folder."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from features.embed import EmbedSettings, embed_dataset
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from tests.dataset_builders import make_dataset
from tests.ingest_helpers import cli_env
from tests.vggish_fixtures import random_weights, write_pca, write_slim_checkpoint


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler on loopback whose one worker runs in a folder of its own."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0") as cluster:
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
             "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"],
            cwd=elsewhere, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            yield cluster.scheduler_address
        finally:
            worker.terminate()
            worker.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("absolute", ["", "checkpoint"])
def test_relative_weights_reach_workers_in_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheduler: str, absolute: str
):
    make_dataset(tmp_path / "ds", {"train": [[0], [1]]}, num_classes=2)
    checkpoint = write_slim_checkpoint(tmp_path / "w" / "vggish_model.ckpt", random_weights(0))
    write_pca(tmp_path / "w" / "pca.npz")
    monkeypatch.chdir(tmp_path)
    settings = EmbedSettings(
        checkpoint if absolute else "w/vggish_model.ckpt", "w/pca.npz", batch_size=8
    )
    summary = embed_dataset("ds", settings, scheduler=scheduler)
    assert summary.shards_done == 1
    emb = load_manifest(DatasetStore("ds")).embeddings["vggish"]["train"]
    assert sum(shard.num_clips for shard in emb.shards) == 2


def test_weights_missing_on_a_worker_are_named_so(tmp_path: Path):
    from features.embed import embed_shard

    ds = make_dataset(tmp_path / "ds", {"train": [[0]]}, num_classes=2).root
    (shard,) = load_manifest(DatasetStore(str(ds))).splits["train"].shards
    settings = EmbedSettings(str(tmp_path / "model.ckpt"), str(tmp_path / "pca.npz"))
    args = (str(ds), None, "train", dataclasses.asdict(shard), {}, settings, {}, "r")
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        future = client.submit(embed_shard, *args)
        with pytest.raises(FileNotFoundError) as caught:
            future.result()
    message = str(caught.value)
    assert message.startswith(f"checkpoint {settings.checkpoint} is not on Dask worker ")
    assert "download" not in message

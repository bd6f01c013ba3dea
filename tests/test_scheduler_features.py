"""A ``--scheduler`` address that cannot be used is an error naming it, not a traceback."""

from __future__ import annotations

from pathlib import Path

import dask
import pytest
from typer.testing import CliRunner

from features.dask_runtime import SchedulerError, dask_client
from features.embed import EmbedSettings, embed_dataset
from tests.dataset_builders import make_dataset
from tests.test_embed_short_clips import fake_vggish

NOBODY = "tcp://127.0.0.1:1"


@pytest.fixture(autouse=True)
def _short_connect_timeout():
    with dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}):
        yield


@pytest.mark.parametrize("address", [NOBODY, "no-port"])
def test_an_address_without_a_scheduler_is_named(address: str):
    with (
        pytest.raises(SchedulerError, match=f"--scheduler {address}: cannot connect"),
        dask_client(address),
    ):
        pass


def test_index_and_embed_name_the_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from workflows.cli import app

    ds = make_dataset(tmp_path / "ds", {"train": [[0], [1]]}, num_classes=2).root
    result = CliRunner().invoke(app, ["index", str(ds), "--scheduler", NOBODY])
    assert result.exit_code == 2
    assert f"error: --scheduler {NOBODY}: cannot connect" in result.stderr
    settings: EmbedSettings = fake_vggish(tmp_path, monkeypatch)
    with pytest.raises(SchedulerError, match=f"--scheduler {NOBODY}"):
        embed_dataset(str(ds), settings, scheduler=NOBODY)

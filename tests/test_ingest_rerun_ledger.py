"""pipelines/ingest.py: a committed shard whose ledger part is lost keeps its clips committed:
a re-run reads their ids (and labels) from the shard instead of ingesting them again."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest

from pipelines.ingest import run_ingest
from tests.ingest_helpers import manifest
from tests.media import write_media
from tests.test_ingest_driver import local_config


@pytest.mark.parametrize("fmt", ["parquet", "hdf5"])
def test_a_lost_ledger_part_does_not_make_a_rerun_ingest_its_clips_again(tmp_path, fmt):
    audio = tmp_path / "audio"
    for i in range(4):
        write_media(audio / f"c{i}.wav", 1.0, 16000, freq=300 + 100 * i, seed=i)
    listing = tmp_path / "list.csv"
    listing.write_text("path,labels\n" + "".join(f"c{i}.wav,tone\n" for i in range(4)))
    out = tmp_path / "ds"
    cfg = dataclasses.replace(local_config(listing, audio, out), formats=(fmt,))
    assert run_ingest(cfg, log=lambda line: None).shards == 2
    lost = out / "ledger" / "train" / "shard-00001.parquet"
    lost_ids = set(pq.read_table(lost).column("clip_id").to_pylist())
    lost.unlink()
    lines: list[str] = []
    again = run_ingest(cfg, log=lines.append)
    assert (again.already_done, again.planned, again.committed) == (4, 0, 0)
    assert again.dataset_clips == 4
    assert [s["index"] for s in manifest(out)["splits"]["train"]["shards"]] == [0, 1]
    assert (
        f"1 committed shard(s) have no ledger part, e.g. {lost}: their clips count as "
        "committed, read from the shards (`audiomill dataset verify` reports the missing parts)"
    ) in lines
    # their labels come from the shard too: a changed one is refused
    moved = sorted(lost_ids)[0]
    name = moved.removesuffix("_0")
    listing.write_text(listing.read_text().replace(f"{name},tone", f"{name},other"))
    with pytest.raises(ValueError, match=f"{moved} \\(committed as 'tone', line \\d says 'other'"):
        run_ingest(dataclasses.replace(cfg, classes=None), log=lambda line: None)

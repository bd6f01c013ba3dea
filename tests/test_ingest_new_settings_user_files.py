"""pipelines/ingest.py: a dataset without clips that takes a run's new settings forgets only
what audiomill wrote in its ledger folders, never a user's file there."""

from __future__ import annotations

from pathlib import Path

from pipelines.ingest import run_ingest
from tests.ingest_helpers import manifest
from tests.media import write_media
from tests.test_ingest_driver import local_config


def test_new_settings_keep_a_users_files_in_the_ledger_folder(tmp_path: Path):
    audio = tmp_path / "audio"
    write_media(audio / "c0.wav", 1.0, 16000, freq=300, seed=0)
    good = (audio / "c0.wav").read_bytes()
    (audio / "c0.wav").write_bytes(b"RIFF not audio at all" * 50)
    listing = tmp_path / "list.csv"
    listing.write_text("path,labels\nc0.wav,tone\n")
    cfg = local_config(listing, audio, tmp_path / "ds")
    assert run_ingest(cfg, log=lambda line: None).failed == {"decode_error": 1}
    folder = tmp_path / "ds" / "ledger" / "train"
    parts = sorted(p.name for p in folder.iterdir())
    user_files = {"notes.txt": b"my notes", "shard-00003.h5": b"not ours"}
    for name, data in user_files.items():
        (folder / name).write_bytes(data)
    (audio / "c0.wav").write_bytes(good)
    cfg.sample_rate = 8000
    lines: list[str] = []
    assert run_ingest(cfg, log=lines.append).committed == 1
    assert lines[0].startswith("the dataset holds no clips yet, so this run's settings replace")
    assert {name: (folder / name).read_bytes() for name in user_files} == user_files
    assert not any((folder / name).exists() for name in parts)  # the old settings' failures
    assert manifest(tmp_path / "ds")["splits"]["train"]["num_clips"] == 1

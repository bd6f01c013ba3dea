"""A ledger part that cannot be read: a one-line error naming it, and a problem for verify."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.dataset_state import LedgerReadError, read_ledger, read_ledger_part
from pipelines.dataset_tools import dataset_failures, dataset_info, verify_dataset
from pipelines.storage import DatasetStore
from tests.dataset_builders import make_dataset
from tests.ingest_helpers import audiomill
from tests.media import write_media

SPLITS = {"train": [[0], [1], [0], [1], [0], [1]], "eval": [[1], [0]]}  # train: shards 0 and 1
PART = "ledger/train/shard-00000.parquet"


def _flip_bytes(path: Path) -> None:
    """Damage the middle of a Parquet file: it still has its magic bytes, its pages do not read."""
    data = bytearray(path.read_bytes())
    for k in range(len(data) // 3, len(data) // 3 + 60):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    """Cut a Parquet file short: no footer."""
    path.write_bytes(path.read_bytes()[:100])


DAMAGE = {"flipped": _flip_bytes, "truncated": _truncate, "empty": lambda p: p.write_bytes(b"")}


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A dataset whose train ledger part of shard 0 is damaged one way or another."""
    make_dataset(tmp_path, SPLITS, num_classes=2, failures={"train": [("validation", [0])]})
    DAMAGE[request.param](tmp_path / PART)
    return tmp_path


def test_read_ledger_names_the_part_and_the_reason(damaged: Path):
    with pytest.raises(LedgerReadError) as raised:
        read_ledger(DatasetStore(str(damaged)))
    message = str(raised.value)
    assert message.startswith(f"{damaged / PART}: ledger part cannot be read (")
    assert "\n" not in message and "<Buffer>" not in message
    assert raised.value.path == PART
    assert isinstance(raised.value, ValueError)  # what every command reports as an error line


def test_read_ledger_can_leave_unreadable_parts_out(damaged: Path):
    unreadable: list[LedgerReadError] = []
    table = read_ledger(DatasetStore(str(damaged)), unreadable=unreadable)
    assert [e.path for e in unreadable] == [PART]
    assert table.num_rows == 2 + 2 + 1  # eval, train shard 1, the failure


@pytest.mark.parametrize(
    "call",
    [dataset_info, dataset_failures, lambda root: dataset_failures(root, split="train")],
    ids=["info", "failures", "failures-of-the-split"],
)
def test_info_and_failures_name_the_part(damaged: Path, call):
    with pytest.raises(ValueError, match=rf"^{damaged / PART}: ledger part cannot be read \("):
        call(str(damaged))


def test_verify_reports_the_part_and_checks_everything_else(damaged: Path):
    manifest = json.loads((damaged / "manifest.json").read_text())
    shard = manifest["splits"]["eval"]["shards"][0]["files"]["hdf5"]["path"]
    (damaged / shard).write_bytes((damaged / shard).read_bytes()[:-10] + b"0123456789")
    report = verify_dataset(str(damaged))
    assert len(report.problems) == 2, report.problems
    assert report.problems[0].startswith(f"{PART}: cannot be read (")
    assert report.problems[1] == f"{shard}: sha256 mismatch"
    assert report.files_checked == 3
    assert report.clips_checked == 6  # train's shards, read without ledger rows for shard 0


def test_verify_of_a_ledger_that_reads_not_at_all_says_only_that(tmp_path: Path):
    make_dataset(tmp_path, {"train": [[0], [1]]}, num_classes=2)
    _truncate(tmp_path / PART)
    assert [p.split(" (")[0] for p in verify_dataset(str(tmp_path)).problems] == [
        f"{PART}: cannot be read"
    ]


def test_cli_commands_name_the_part(tmp_path: Path):
    make_dataset(tmp_path, SPLITS, num_classes=2)
    _flip_bytes(tmp_path / PART)
    for command in (["dataset", "info"], ["dataset", "failures"]):
        proc = audiomill(*command, str(tmp_path), check=False)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr
        assert lines[0].startswith(f"error: {tmp_path / PART}: ledger part cannot be read (")
    proc = audiomill("dataset", "verify", str(tmp_path), check=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"problem: {PART}: cannot be read (")
    assert lines[1:] == ["3 files, 8 clips checked: 1 problem(s)"]


@pytest.mark.slow
def test_ingest_into_a_dataset_with_a_damaged_ledger_names_the_part(tmp_path: Path):
    write_media(tmp_path / "a.wav", 1.0, 8000)
    (tmp_path / "m.csv").write_text("path,labels\na.wav,x\n")
    out = tmp_path / "ds"
    args = ["ingest", "--segments", str(tmp_path / "m.csv"), "--out", str(out)]
    audiomill(*args, "--sample-rate", "8000", "--clip-seconds", "1", "--workers", "1")
    part = next((out / "ledger" / "train").glob("shard-*.parquet"))
    _truncate(part)
    proc = audiomill(*args, "--sample-rate", "8000", "--clip-seconds", "1", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"error: {part}: ledger part cannot be read (" in proc.stderr


LOST = "ledger/train/shard-00001.parquet"


def test_verify_names_a_missing_ledger_part_once(tmp_path: Path):
    make_dataset(tmp_path, {"train": [[0], [1]] * 6}, num_classes=2)  # shards 0, 1, 2
    (tmp_path / LOST).unlink()
    report = verify_dataset(str(tmp_path))
    assert report.problems == [
        f"{LOST}: missing (the ledger part of committed shard 1, 4 clips): its clips are not "
        "checked against the ledger"
    ]
    assert report.clips_checked == 12
    proc = audiomill("dataset", "verify", str(tmp_path), check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [
        f"problem: {report.problems[0]}",
        "3 files, 12 clips checked: 1 problem(s)",
    ]


def test_verify_counts_many_clips_without_ledger_rows(tmp_path: Path):
    make_dataset(tmp_path, {"train": [[0], [1]] * 5}, num_classes=2, shard_clips=5)
    part = tmp_path / "ledger/train/shard-00000.parquet"
    rows = read_ledger_part(DatasetStore(str(tmp_path)), "ledger/train/shard-00000.parquet")
    ids = rows.column("clip_id").to_pylist()
    pq.write_table(rows.slice(0, 1), part)  # the part has lost the rows of four clips
    shard = json.loads((tmp_path / "manifest.json").read_text())["splits"]["train"]["shards"][0]
    assert verify_dataset(str(tmp_path)).problems == [
        f"{shard['files']['hdf5']['path']}: 4 clips have no committed ledger row, e.g. "
        f"{', '.join(ids[1:4])}"
    ]


def test_info_counts_the_clips_of_a_shard_without_its_ledger_part(tmp_path: Path):
    make_dataset(tmp_path, SPLITS, num_classes=2, failures={"train": [("validation", [0])]})
    # a clip of shard 1 that an earlier run recorded as failed: the shard's commit wins
    failures = tmp_path / "ledger/train/failures-run-1.parquet"
    table = pq.read_table(failures)
    clip_id = pq.read_table(tmp_path / LOST).column("clip_id")[0]
    again = table.set_column(0, table.schema.field(0), pa.array([clip_id], pa.string()))
    pq.write_table(pa.concat_tables([table, again]), failures)
    (tmp_path / LOST).unlink()
    info = dataset_info(str(tmp_path))
    train = info["splits"]["train"]
    assert (train["clips"], train["requested"], train["failed"]) == (6, 7, 1)
    note = (
        f"1 committed shard(s) have no ledger part, e.g. {tmp_path / LOST}: their clips count "
        "as committed, read from the shards (`audiomill dataset verify` reports the missing "
        "parts)"
    )
    assert info["notes"] == [note]
    proc = audiomill("dataset", "info", str(tmp_path))
    assert proc.stdout.splitlines()[-1] == f"note: {note}"
    assert json.loads(audiomill("dataset", "info", str(tmp_path), "--json").stdout)["notes"] == [
        note
    ]

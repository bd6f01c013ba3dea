"""An index of a dataset that cannot be written is refused in one line naming the dataset and the
reason (``DatasetAccessError``), before the Dask pass where that can be told beforehand."""

from __future__ import annotations

from pathlib import Path

import pytest

from features import class_index
from features.class_index import build_class_index
from pipelines.storage import DatasetAccessError
from schemas.class_index import INDEX_META, class_index_dir
from tests.dataset_builders import make_dataset
from tests.ingest_helpers import audiomill
from tests.unwritable import immutable

DENIED = "Operation not permitted"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_dataset(tmp_path / "ds", {"train": [[0], [1], [0, 1]]}, num_classes=2)
    return tmp_path / "ds"


def _forbid_dask_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the shards' labels are read."""

    def read(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Dask pass ran before the dataset was found unwritable")

    monkeypatch.setattr(class_index, "read_split_labels", read)


def _refusal(root: Path) -> str:
    with pytest.raises(DatasetAccessError) as refused:
        build_class_index(root, "train", client="synchronous")
    return str(refused.value)


def test_a_dataset_nobody_may_write_is_refused_before_the_dask_pass(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    _forbid_dask_pass(monkeypatch)
    with immutable(root):
        assert _refusal(root) == f"cannot write the dataset at {root}: {DENIED}"
    assert not (root / "index").exists()


def test_an_index_folder_nobody_may_write_is_refused_before_the_dask_pass(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    build_class_index(root, "train", client="synchronous")
    folder = root / class_index_dir("train", "waveforms", "vggish")
    before = (folder / INDEX_META).read_bytes()
    _forbid_dask_pass(monkeypatch)
    with immutable(folder):
        assert _refusal(root) == f"cannot write the dataset at {root}: {DENIED}"
    assert (folder / INDEX_META).read_bytes() == before


def test_a_file_where_the_index_folder_goes_is_refused_before_the_dask_pass(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    _forbid_dask_pass(monkeypatch)
    (root / "index").write_text("not a folder")
    assert _refusal(root) == (
        f"cannot write the dataset at {root}: {root / 'index'} is a file, not a directory"
    )


def test_an_old_index_that_cannot_be_replaced_is_refused_in_one_line(root: Path):
    build_class_index(root, "train", client="synchronous")
    meta = root / class_index_dir("train", "waveforms", "vggish") / INDEX_META
    with immutable(meta):
        assert _refusal(root) == f"cannot write the dataset at {root}: {DENIED}"


def test_index_cli_says_in_one_line_that_it_cannot_write(root: Path):
    with immutable(root):
        proc = audiomill("index", str(root), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: cannot write the dataset at {root}: {DENIED}"

"""A folder of audio is read through its symbolic links: to files and to folders, each folder
once (a link back up the tree, or a second link to a folder, is not walked again)."""

from __future__ import annotations

from pathlib import Path

from pipelines.segment_loading import class_map_from_list, scan_folder
from tests.media import write_media


def _folder_with_links(tmp_path: Path) -> Path:
    """``f3``: ``dog/a.wav``, a link ``dog/linked.wav`` to a file elsewhere, a link ``cat`` to a
    folder elsewhere, a second link ``cat2`` to that folder and a link ``loop`` to ``f3``."""
    folder, elsewhere = tmp_path / "f3", tmp_path / "elsewhere"
    write_media(folder / "dog" / "a.wav", 0.2, 8000)
    write_media(elsewhere / "cat" / "b.wav", 0.2, 8000)
    write_media(elsewhere / "c.wav", 0.2, 8000)
    (folder / "dog" / "linked.wav").symlink_to(elsewhere / "c.wav")
    (folder / "cat").symlink_to(elsewhere / "cat", target_is_directory=True)
    (folder / "cat2").symlink_to(elsewhere / "cat", target_is_directory=True)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    return folder


def test_symlinked_folders_are_followed_once(tmp_path: Path) -> None:
    folder = _folder_with_links(tmp_path)
    class_map = class_map_from_list(str(folder))
    assert [c.display_name for c in class_map] == ["cat", "dog"]
    scanned = scan_folder(str(folder), class_map, "train").segments
    assert {Path(s.source).relative_to(folder).as_posix(): s.label_mids for s in scanned} == {
        "cat/b.wav": ("cat",),
        "dog/a.wav": ("dog",),
        "dog/linked.wav": ("dog",),
    }

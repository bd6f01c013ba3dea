"""Tiny copies of public datasets in their published layouts, with real audio, for recipe tests."""

from __future__ import annotations

from pathlib import Path

from tests.media import write_media

URBAN_HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
URBAN_CLASSES = [
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
]  # fmt: skip
FSD_CLASSES = ("Bark", "Walk_and_footsteps", "Fill_(with_liquid)", "Accordion")


def make_urbansound8k(root: Path, folds: int = 3, per_fold: int = 2) -> dict[str, int]:
    """UrbanSound8K with ``per_fold`` good slices in each of ``folds`` folds, then bad rows.

    The CSV's start/end are positions in the (absent) original recordings, far beyond the
    slices' length. Returns the good clips per split. The bad rows, on lines after the good
    ones: a malformed line, a missing audio file, a class that disagrees with its classID,
    fold 11, and a slice name that is a path.
    """
    lines = [URBAN_HEADER]
    for fold in range(1, folds + 1):
        for k in range(per_fold):
            class_id = (fold * per_fold + k) % 10
            name = f"{100000 + fold * 10 + k}-{class_id}-0-{k}.wav"
            seconds = 0.5 + 0.25 * k
            write_media(root / "audio" / f"fold{fold}" / name, seconds, 8000, freq=300 + 50 * k)
            lines.append(
                f"{name},{100000 + fold},{12.5 + k},{12.5 + k + seconds},1,{fold},{class_id},"
                f"{URBAN_CLASSES[class_id]}\n"
            )
    lines += [
        "broken.wav,1,0,1,1,1\n",
        "999-3-0-0.wav,999,0,1,1,1,3,dog_bark\n",
        f"{100011}-0-0-9.wav,1,0,1,1,1,4,dog_bark\n",
        "998-3-0-0.wav,998,0,1,1,11,3,dog_bark\n",
        "../../etc/passwd,1,0,1,1,1,3,dog_bark\n",
    ]
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / "UrbanSound8K.csv").write_text("".join(lines))
    return {f"fold{f}": per_fold for f in range(1, folds + 1)}


def make_whale(root: Path, positives: int = 5, negatives: int = 15) -> dict[str, str]:
    """The Kaggle whale data folder: ``train.csv`` and ``train/trainN.aiff`` (2 s at 2 kHz).

    Clips 1..positives are calls (label 1), the rest not. Returns clip name -> label.
    """
    labels = {}
    for n in range(1, positives + negatives + 1):
        name = f"train{n}.aiff"
        labels[name] = "1" if n <= positives else "0"
        write_media(root / "train" / name, 2.0, 2000, freq=150 + 10 * n, seed=n)
    rows = "".join(f"{name},{label}\n" for name, label in labels.items())
    (root / "train.csv").write_text("clip_name,label\n" + rows)
    return labels


def make_fsd2019(root: Path, submission: bool = True) -> dict[str, dict[str, tuple[str, ...]]]:
    """FSDKaggle2019 with clips of 0.3 s to 3 s: curated, noisy, test, sample_submission.

    Returns split -> fname -> labels for the good rows. Bad rows: in curated an unknown label
    (only unknown with a submission file) and a missing file; in noisy a malformed line.
    """
    good = {
        "curated": {
            "0006ae4e.wav": ("Bark",),
            "0019ef41.wav": ("Bark", "Walk_and_footsteps"),
            "001ec0ad.wav": ("Fill_(with_liquid)",),
        },
        "noisy": {"00097e21.wav": ("Accordion",), "000b6cfb.wav": ("Walk_and_footsteps",)},
        "test": {"000ccb97.wav": (), "0012633b.wav": ()},
    }
    folders = {"curated": "train_curated", "noisy": "train_noisy", "test": "test"}
    lengths = iter((0.3, 1.1, 3.0, 0.7, 2.2, 0.4, 1.6))
    for split, clips in good.items():
        for fname in clips:
            write_media(root / folders[split] / fname, next(lengths), 16000)
    curated = "".join(f'{f},"{",".join(labels)}"\n' for f, labels in good["curated"].items())
    curated += 'ffff0001.wav,"Bark,Not_a_class"\nffff0002.wav,Bark\n'
    (root / "train_curated.csv").write_text("fname,labels\n" + curated)
    noisy = "".join(f'{f},"{",".join(labels)}"\n' for f, labels in good["noisy"].items())
    (root / "train_noisy.csv").write_text("fname,labels\n" + noisy + "a,b,c\n")
    if submission:
        header = "fname," + ",".join(FSD_CLASSES) + "\n"
        body = "".join(f"{f}" + ",0" * len(FSD_CLASSES) + "\n" for f in good["test"])
        (root / "sample_submission.csv").write_text(header + body)
    return good

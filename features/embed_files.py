"""``audiomill embed-files``: VGGish embeddings of a few audio files, without a dataset."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.embed import EXAMPLE_SECONDS, EmbedSettings, load_embedder
from features.vggish_frontend import (
    frontend_provenance,
    one_example_samples,
    waveform_to_examples,
)
from pipelines.audio import decode, int16_waveform, to_mono

INGEST_SAMPLE_RATE = 32000
"""``audiomill ingest``'s default ``--sample-rate``: ``predict`` embeds files as clips ingested
at it when the run's dataset cannot tell its own."""


@dataclass
class FileEmbeddings:
    """Embeddings of one file: one row per 0.96 s example.

    Attributes
    ----------
    path : str
    quantized, raw : np.ndarray [shape=(n, 128)]
        uint8 and float32 embeddings.
    padded : bool
        Whether the file was shorter than one example and zero-padded to one.
    """

    path: str
    quantized: np.ndarray
    raw: np.ndarray
    padded: bool = False

    @property
    def start_s(self) -> np.ndarray:
        """Start time of each example, in seconds."""
        return np.arange(len(self.quantized)) * EXAMPLE_SECONDS


def embed_file(
    path: str, settings: EmbedSettings, sample_rate: int | None = None
) -> FileEmbeddings:
    """Embed every full 0.96 s example of ``path`` (any format ingest reads).

    Without ``sample_rate`` the file's own samples go to the front end, as in Google's
    reference (``embed-files``). With it, the file is prepared as ingest prepares a clip at
    that rate (:func:`pipelines.audio.int16_waveform`: downmixed, resampled with soxr and
    quantized to int16, without cutting it to a clip's length), so its
    embeddings are those ``embed`` makes of its clip in a dataset ingested at ``sample_rate``
    (``predict`` with an embedding run): VGGish's log-mel front end magnifies the int16
    rounding in nearly empty bands. A file shorter than one example is zero-padded to one, as
    ``embed`` keeps a short clip.
    """
    audio = decode(path)
    if sample_rate is None:
        rate, samples = audio.sample_rate, to_mono(audio.samples)
    else:
        rate, samples = sample_rate, int16_waveform(audio, sample_rate)
    examples = waveform_to_examples(samples, rate, mode=settings.mode, resampler=settings.resampler)
    padded = not len(examples)
    if padded:
        samples = np.pad(samples, (0, one_example_samples(rate) - len(samples)))
        examples = waveform_to_examples(
            samples, rate, mode=settings.mode, resampler=settings.resampler
        )
    raw, quantized = load_embedder(settings).embed(examples)
    return FileEmbeddings(os.fspath(path), quantized, raw, padded)


def save_embeddings(results: Sequence[FileEmbeddings], out: str, provenance: dict) -> str:
    """Write embeddings to ``out``: ``.npz`` (arrays with a file index) or ``.parquet`` (rows).

    The ``.npz`` holds ``embedding`` uint8 (n, 128), ``raw`` float32 (n, 128), ``file_index``
    (n,), ``start_s`` (n,) and ``paths`` (files,); the Parquet file one row per example with
    ``path``, ``start_s``, ``embedding`` and ``raw``. Written to a temporary name, then renamed.
    """
    quantized = np.concatenate([r.quantized for r in results]) if results else np.zeros((0, 128))
    raw = np.concatenate([r.raw for r in results]) if results else np.zeros((0, 128))
    index = np.concatenate([np.full(len(r.quantized), i) for i, r in enumerate(results)] or [[]])
    starts = np.concatenate([r.start_s for r in results] or [[]])
    tmp = f"{out}.tmp-{os.getpid()}"
    if out.endswith(".npz"):
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                embedding=quantized.astype(np.uint8),
                raw=raw.astype(np.float32),
                file_index=index.astype(np.int32),
                start_s=starts.astype(np.float64),
                paths=np.array([r.path for r in results]),
                **{k: np.array(str(v)) for k, v in provenance.items()},
            )
    elif out.endswith(".parquet"):
        paths = [results[i].path for i in index.astype(int)]
        table = pa.table(
            {
                "path": paths,
                "start_s": starts.astype(np.float64),
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(quantized.astype(np.uint8).ravel()), 128
                ),
                "raw": pa.FixedSizeListArray.from_arrays(
                    pa.array(raw.astype(np.float32).ravel()), 128
                ),
            }
        ).replace_schema_metadata({f"audiomill.{k}": str(v) for k, v in provenance.items()})
        pq.write_table(table, tmp)
    else:
        raise ValueError(f"--out must end in .npz or .parquet, not {out!r}")
    os.replace(tmp, out)
    return out


def _check_out(out: str) -> None:
    """Refuse an ``--out`` that cannot be written, before any file is embedded."""
    if not out.endswith((".npz", ".parquet")):
        raise ValueError(f"--out must end in .npz or .parquet, not {out!r}")
    parent = os.path.dirname(os.path.abspath(out))
    if os.path.isfile(parent):
        raise ValueError(f"--out {out}: {parent} is a file, not a folder")
    if not os.path.isdir(parent):
        raise ValueError(f"--out {out}: directory {parent} does not exist")
    if os.path.isdir(out):
        raise ValueError(f"--out {out} is a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: no permission to write in {parent}")


def embed_files(
    paths: Sequence[str],
    settings: EmbedSettings,
    out: str,
    progress: Callable[[int, int], None] | None = None,
) -> list[FileEmbeddings]:
    """Embed each file in turn and save them all to ``out``.

    Raises
    ------
    ValueError
        If ``out`` does not end in .npz or .parquet or cannot be written (checked first).
    """
    from features.vggish_checkpoint import checkpoint_sha256
    from features.vggish_postprocess import pca_sha256

    _check_out(out)
    results = []
    for n, path in enumerate(paths, start=1):
        results.append(embed_file(path, settings))
        if progress:
            progress(n, len(paths))
    provenance = {
        "checkpoint_sha256": checkpoint_sha256(settings.checkpoint),
        "pca_sha256": pca_sha256(settings.pca_params),
        "mode": settings.mode,
        "resampler": frontend_provenance(settings.mode, settings.resampler)["resampler"],
    }
    save_embeddings(results, out, provenance)
    return results

"""Export a trained run as a TensorFlow SavedModel for serving outside audiomill.

``export_run(RUN, OUT)`` writes::

    OUT/saved_model/   the SavedModel: signature ``serving_default`` (and the function
                       ``serve``) taking one float32 tensor and returning float32 ``scores``
    OUT/classes.csv    the class map of the score columns (index,mid,display_name)
    OUT/export.json    input name, shape, dtype and range; sample rate and preparation of
                       waveforms, or frame rate; class count; output activation; weights
                       digest; the run's configuration

The input is what the model was trained on, as float32: waveforms ``(B, T)`` in [-1, 1] at the
run's sample rate (T the run's clip length; the log-mel front end is inside the model), or
quantized VGGish embeddings ``(B, F, 128)`` on their 0..255 scale (dequantized inside the
model). The output is ``(B, C)`` probabilities: sigmoid per class for multi-label runs, softmax
for single-label ones. Reload with ``tf.saved_model.load(OUT / "saved_model")`` and call
``.serve(x)`` or ``.signatures["serving_default"](<input name>=x)["scores"]``.

A waveform is quantized inside the exported graph as ingest stores it and training reads it
(:func:`quantize_waveform`), so float audio prepared as predict prepares a file (mono as the
channel mean, resampled with soxr HQ to the sample rate) scores as predict scores that file;
``input.preparation`` in export.json records these steps. Int16 samples go in divided by 32767
(:func:`pipelines.audio.int16_to_float`), which the quantization leaves unchanged; divided by
32768, as :func:`modeling.readers.to_float` does, those beyond 16384 would move by one step.

The SavedModel is written under a temporary name beside its destination and renamed into
place, so an interrupted export never leaves a half-written model at ``OUT/saved_model``; it
replaces an earlier export's only once ``classes.csv`` and ``export.json`` are written too
(:func:`modeling.runs.staged_files`), so a write that fails (a full disk) leaves that export
whole. The temporary folder (``OUT/.saved_model.XXXX``) is held by its export (a lock beside
it, :func:`modeling.process_lock.process_lock`); an export removes those in ``OUT`` that no
live export holds, what exports killed while writing left.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from modeling.evaluation import LoadedRun, load_run
from modeling.process_lock import process_lock, remove_abandoned
from modeling.readers import GRAPH_TRANSFORMS, to_float
from modeling.runs import RunDir, check_out_dir, json_bytes, staged_files
from pipelines.audio import INT16_SCALE

SAVED_MODEL = "saved_model"
EXPORT_JSON = "export.json"
CLASSES_CSV = "classes.csv"
OUTPUT_NAME = "scores"
TO_FLOAT_DIVISOR = 32768  # modeling.readers.to_float's scale of int16 waveforms
RESAMPLE_QUALITY = "HQ"  # pipelines.audio.int16_waveform's soxr recipe
TEMPORARY_PREFIX = f".{SAVED_MODEL}."
_TEMPORARY = re.compile(rf"\.{SAVED_MODEL}\.(?P<key>[0-9a-f]{{32}}|[a-z0-9_]{{8}})(?:\.lock)?")
"""A SavedModel's temporary folder (:func:`_saved_model_folder`) or its lock file; 8 characters
as ``mkdtemp`` named them before."""


def quantize_waveform(x: tf.Tensor) -> tf.Tensor:
    """Float audio as training reads it: :func:`pipelines.audio.float_to_int16`, then
    :func:`modeling.readers.to_float`, in the graph.

    Parameters
    ----------
    x : tf.Tensor [shape=(...), dtype=float32]

    Returns
    -------
    tf.Tensor [shape=x.shape, dtype=float32]
        ``rint(clip(x, -1, 1) * 32767) / 32768`` (ties to even); NaN becomes 0.
    """
    scale = tf.constant(INT16_SCALE, tf.float32)
    scaled = x * scale
    scaled = tf.where(tf.math.is_nan(scaled), tf.zeros_like(scaled), scaled)
    quantized = tf.round(tf.clip_by_value(scaled, -scale, scale))  # tf.round: half to even
    return GRAPH_TRANSFORMS[to_float](tf.cast(quantized, tf.int16))


def waveform_preparation(sample_rate: int) -> dict[str, Any]:
    """How audio must be prepared for a waveform export, and what its graph does to it."""
    return {
        "sample_rate": sample_rate,
        "channels": "mono: mean of the channels",
        "resampler": "soxr",
        "resample_quality": RESAMPLE_QUALITY,
        "quantization": {
            "in_graph": True,
            "clip": [-1.0, 1.0],
            "nan": 0.0,
            "scale": INT16_SCALE,
            "rounding": "half_to_even",
            "divisor": TO_FLOAT_DIVISOR,
            "int16_input_divisor": INT16_SCALE,
        },
    }


def serving_input(loaded: LoadedRun) -> dict[str, Any]:
    """The exported model's input: ``name``, ``shape`` (None: any size), ``dtype``, ``range``;
    for waveforms also ``sample_rate`` and ``preparation`` (:func:`waveform_preparation`)."""
    config, model = loaded.config, loaded.model
    if config.input == "waveforms":
        rate = int(config.model_kwargs.get("sample_rate") or model.get_layer("logmel").sample_rate)
        return {
            "name": "waveform",
            "shape": [None, model.input_shape[1]],
            "dtype": "float32",
            "range": [-1.0, 1.0],
            "sample_rate": rate,
            "preparation": waveform_preparation(rate),
        }
    return {
        "name": "embeddings",
        "shape": [None, *model.input_shape[1:]],
        "dtype": "float32",
        "range": [0.0, 255.0],
        "embedding_model": config.embedding_model,
        "frame_seconds": 0.96,
    }


def check_export_dir(out_dir: str | os.PathLike[str]) -> None:
    """Refuse an ``out_dir`` that an export would damage.

    Parameters
    ----------
    out_dir : str or os.PathLike

    Raises
    ------
    FileExistsError
        If it is a dataset or a run's folder (:func:`modeling.runs.check_out_dir`), or holds
        a ``saved_model`` or ``classes.csv`` but no ``export.json``: files of something else,
        which the export would replace.
    PermissionError
        If it cannot be written or made (:func:`modeling.runs.check_writable`).
    """
    out = Path(out_dir)
    check_out_dir(out, "export", "output")
    if (out / EXPORT_JSON).exists():
        return
    for name in (SAVED_MODEL, CLASSES_CSV):
        if (out / name).exists():
            raise FileExistsError(
                f"--out {out} holds a {name} of no earlier export (no {EXPORT_JSON}): export "
                "would replace it; choose another --out"
            )


def _lock_of(folder: Path) -> Path:
    """The lock file of a temporary SavedModel folder: ``.saved_model.XXXX.lock`` beside it."""
    return folder.with_name(f"{folder.name}.lock")


def _remove_abandoned_saved_models(out: Path) -> None:
    """Delete the temporary SavedModel folders in ``out`` (and their lock files) that exports
    killed while writing left; one that a live export holds stays."""
    keys = {match["key"] for match in map(_TEMPORARY.fullmatch, os.listdir(out)) if match}
    for key in sorted(keys):
        folder = out / f"{TEMPORARY_PREFIX}{key}"
        remove_abandoned(folder, _lock_of(folder))


@contextlib.contextmanager
def _saved_model_folder(out: Path) -> Iterator[Path]:
    """A new hidden folder in ``out`` to write the SavedModel in, held by this process while
    the block runs (a lock beside it, which dies with the process), then deleted."""
    folder = out / f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}"
    with process_lock(_lock_of(folder), f"{folder} is in use"):
        folder.mkdir()
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def export_run(
    run: str | os.PathLike[str] | RunDir | LoadedRun,
    out_dir: str | os.PathLike[str],
    which: str = "best",
) -> dict[str, Any]:
    """Write the run's model as a SavedModel with its class map and a description.

    Parameters
    ----------
    run : str, os.PathLike, RunDir or LoadedRun
    out_dir : str or os.PathLike
        Created if needed; an earlier export there is replaced. Not a dataset, a run's own
        folder, nor one holding a ``saved_model`` or ``classes.csv`` of no earlier export
        (no ``export.json``).
    which : {"best", "last"}
        Weights to export.

    Returns
    -------
    dict
        What ``export.json`` holds: ``format``, ``saved_model`` (path relative to
        ``out_dir``), ``signature``, ``endpoint``, ``input`` (:func:`serving_input`),
        ``output``, ``num_classes``, ``sample_rate`` (waveform runs, else None),
        ``weights``, ``weights_sha256``, ``run`` and ``run_config``.

    Raises
    ------
    FileNotFoundError
        If the run does not exist or has no weights of that kind.
    FileExistsError
        If ``out_dir`` may not be written (see ``out_dir``); nothing is written.
    PermissionError
        If ``out_dir`` cannot be written or made (:func:`modeling.runs.check_writable`);
        nothing is written.
    OSError
        If writing fails later (a full disk): the SavedModel's failure as one line.
    """
    check_export_dir(out_dir)
    loaded = load_run(run, which)
    config, model = loaded.config, loaded.model
    spec = serving_input(loaded)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_saved_models(out)

    def serve(x: tf.Tensor) -> dict[str, tf.Tensor]:
        if config.input == "waveforms":
            x = quantize_waveform(x)
        scores = model(tf.cast(x, model.inputs[0].dtype), training=False)
        return {OUTPUT_NAME: tf.cast(scores, tf.float32)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=serve,
        input_signature=[tf.TensorSpec(spec["shape"], tf.float32, name=spec["name"])],
    )
    description = {
        "format": "tf_saved_model",
        "saved_model": SAVED_MODEL,
        "signature": "serving_default",
        "endpoint": "serve",
        "input": spec,
        "output": {
            "name": OUTPUT_NAME,
            "shape": [None, config.num_classes],
            "dtype": "float32",
            "activation": "sigmoid" if config.task == "multilabel" else "softmax",
        },
        "num_classes": config.num_classes,
        "sample_rate": spec.get("sample_rate"),
        "weights": loaded.weights.name,
        "weights_sha256": loaded.weights_sha256,
        "run": str(loaded.run.path),
        "run_config": config.to_dict(),
    }
    files = {
        out / CLASSES_CSV: loaded.classes.to_csv_text().encode(),
        out / EXPORT_JSON: json_bytes(description),
    }
    with _saved_model_folder(out) as tmp:
        try:
            archive.write_out(str(tmp / SAVED_MODEL), verbose=False)
        except tf.errors.OpError as exc:
            reason = exc.message.splitlines()[0] if exc.message else type(exc).__name__
            raise OSError(f"--out {out}: export could not write its SavedModel: {reason}") from exc
        with staged_files(files):  # an earlier export stays whole until all is written
            final = out / SAVED_MODEL
            if final.exists():
                shutil.rmtree(final)
            (tmp / SAVED_MODEL).rename(final)
    return description

"""Load Google's published TF-slim VGGish checkpoint into the Keras model of ``vggish_model``.

The release (``https://storage.googleapis.com/audioset/vggish_model.ckpt``) is a TF1
``tf.train.Saver`` checkpoint whose variables are named by TF-slim scope, e.g.
``vggish/conv3/conv3_1/weights``. Keras 3 forbids ``/`` in layer names, so the model names its
layers by the last scope component and :data:`VARIABLE_SCOPES` maps them back. Conv kernels are
stored HWIO (3, 3, in, out) and fully connected kernels (in, out), exactly Keras' layouts, so
tensors are assigned without transposition.

Both on-disk layouts are accepted: the single-file V1 format (what the public release is) and the V2
``<prefix>.index`` + ``<prefix>.data-*-of-*`` pair that ``tf.train.Saver`` writes today. Every
expected variable is validated (present, right shape, float32) before any weight is assigned, so a
bad checkpoint leaves the model untouched. Variables the model does not use (``global_step``,
optimizer slots) are ignored and listed in the report.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

VARIABLE_SCOPES: dict[str, str] = {
    "conv1": "vggish/conv1",
    "conv2": "vggish/conv2",
    "conv3_1": "vggish/conv3/conv3_1",
    "conv3_2": "vggish/conv3/conv3_2",
    "conv4_1": "vggish/conv4/conv4_1",
    "conv4_2": "vggish/conv4/conv4_2",
    "fc1_1": "vggish/fc1/fc1_1",
    "fc1_2": "vggish/fc1/fc1_2",
    "fc2": "vggish/fc2",
}
"""Keras layer name -> TF-slim variable scope in ``vggish_model.ckpt``."""

RELEASE_URL = "https://storage.googleapis.com/audioset/vggish_model.ckpt"

_CHUNK = 1 << 20
_V2_FILE_SUFFIX = re.compile(r"\.(index|data-\d{5}-of-\d{5})$")
_TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
"""How an SSTable ends: a V1 checkpoint and the ``.index`` of a V2 checkpoint are SSTables."""


class CheckpointError(ValueError):
    """A VGGish checkpoint is absent, ambiguous, unreadable, or lacks the expected variables."""


def resolve_checkpoint(path: str | os.PathLike) -> tuple[str, list[Path]]:
    """Find the checkpoint prefix and its files for a prefix, single file or directory.

    Parameters
    ----------
    path : str or os.PathLike
        A V2 prefix (``.../vggish_model.ckpt`` with ``.index`` and ``.data-*`` beside it) or one
        of its files, a V1 single-file checkpoint, or a directory holding exactly one checkpoint of
        either kind.

    Returns
    -------
    prefix : str
        The path to hand to ``tf.train.load_checkpoint``.
    files : list of pathlib.Path
        The files the checkpoint consists of, in hashing order (index first, then data shards).

    Raises
    ------
    CheckpointError
        If nothing is found, a V2 index has no data files, or a directory holds several
        checkpoints.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(
            {p.with_suffix("") for p in path.glob("*.index")}
            | {p for p in path.glob("*.ckpt") if p.is_file()}
        )
        if len(found) == 1:
            return resolve_checkpoint(found[0])
        if found:
            names = ", ".join(p.name for p in found)
            raise CheckpointError(
                f"{path} holds several checkpoints ({names}); pass the prefix of the one to load"
            )
        raise CheckpointError(f"no checkpoint (*.index or *.ckpt) in directory {path}")
    if _V2_FILE_SUFFIX.search(path.name):
        path = path.with_name(_V2_FILE_SUFFIX.sub("", path.name))
    index = path.with_name(path.name + ".index")
    if index.is_file():
        data = sorted(path.parent.glob(path.name + ".data-?????-of-?????"))
        if not data:
            raise CheckpointError(f"{index} has no {path.name}.data-*-of-* file beside it")
        return str(path), [index, *data]
    if path.is_file():
        return str(path), [path]
    raise CheckpointError(
        f"no checkpoint at {path}: expected a single file, or {index.name} with data files; "
        f"download the release from {RELEASE_URL}"
    )


def check_checkpoint(path: str | os.PathLike) -> str:
    """Check without TensorFlow that a checkpoint's table is a TensorFlow checkpoint's.

    Reads the last 8 bytes of the V1 file or V2 ``.index``: what TensorFlow checks first, so a
    file of another kind (an ``.npz``) is refused before any process loads the model.

    Parameters
    ----------
    path : str or os.PathLike
        As for :func:`resolve_checkpoint`.

    Returns
    -------
    str
        The checkpoint prefix.

    Raises
    ------
    CheckpointError
        If no checkpoint is found, or its table file does not end as an SSTable does.
    """
    prefix, files = resolve_checkpoint(path)
    with open(files[0], "rb") as fh:
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - len(_TABLE_MAGIC)))
        tail = fh.read()
    if tail != _TABLE_MAGIC:
        raise CheckpointError(
            f"{files[0]} is not a TensorFlow checkpoint (it does not end as the table of one "
            f"does); give Google's vggish_model.ckpt ({RELEASE_URL}) or a tf.train.Saver prefix"
        )
    return prefix


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a checkpoint's files, streamed in :func:`resolve_checkpoint` order.

    For the single-file release this equals ``sha256sum vggish_model.ckpt``; for a V2 checkpoint
    it hashes the index followed by the data shards.

    Parameters
    ----------
    path : str or os.PathLike
        As for :func:`resolve_checkpoint`.

    Returns
    -------
    str
        Hex digest.
    """
    return _sha256_files(resolve_checkpoint(path)[1])


def _sha256_files(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def expected_variables(model: keras.Model) -> dict[str, tuple[int, ...]]:
    """Checkpoint variable names and shapes that ``model`` needs.

    Parameters
    ----------
    model : keras.Model
        A model from :func:`features.vggish_model.build_vggish`.

    Returns
    -------
    dict of str to tuple of int
        ``{"vggish/conv1/weights": (3, 3, 1, 64), "vggish/conv1/biases": (64,), ...}``.
    """
    shapes = {}
    for layer_name, scope in VARIABLE_SCOPES.items():
        layer = model.get_layer(layer_name)
        shapes[f"{scope}/weights"] = tuple(layer.kernel.shape)
        shapes[f"{scope}/biases"] = tuple(layer.bias.shape)
    return shapes


def load_vggish_checkpoint(model: keras.Model, checkpoint: str | os.PathLike) -> dict:
    """Assign the weights of a TF-slim VGGish checkpoint to ``model``.

    Parameters
    ----------
    model : keras.Model
        A model from :func:`features.vggish_model.build_vggish`; modified in place.
    checkpoint : str or os.PathLike
        As for :func:`resolve_checkpoint`.

    Returns
    -------
    dict
        ``prefix`` (str), ``files`` (list of str), ``sha256`` (str, :func:`checkpoint_sha256`),
        ``loaded`` (list of variable names assigned), ``ignored`` (sorted list of checkpoint
        variables not used) and ``parameters`` (int, scalars assigned).

    Raises
    ------
    CheckpointError
        If the checkpoint cannot be found or read, or any expected variable is missing, has the
        wrong shape or is not float32; the message lists every such variable with expected and
        found shapes. The model is not modified in that case.
    """
    # Imported here: the command line resolves and hashes checkpoints without TensorFlow
    # (seconds of import in a process that never runs the model).
    import tensorflow as tf

    prefix, files = resolve_checkpoint(checkpoint)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {prefix}: {exc}") from exc
    found_shapes = reader.get_variable_to_shape_map()
    found_dtypes = reader.get_variable_to_dtype_map()
    expected = expected_variables(model)
    problems = []
    for name, shape in expected.items():
        if name not in found_shapes:
            problems.append(f"  {name}: missing (expected shape {list(shape)})")
        elif tuple(found_shapes[name]) != shape:
            problems.append(f"  {name}: shape {found_shapes[name]} (expected shape {list(shape)})")
        elif found_dtypes[name] != tf.float32:
            problems.append(f"  {name}: dtype {found_dtypes[name].name} (expected float32)")
    if problems:
        raise CheckpointError(
            f"checkpoint {prefix} does not match the VGGish model "
            f"({len(problems)} of {len(expected)} variables):\n" + "\n".join(problems)
        )
    for layer_name, scope in VARIABLE_SCOPES.items():
        model.get_layer(layer_name).set_weights(
            [reader.get_tensor(f"{scope}/weights"), reader.get_tensor(f"{scope}/biases")]
        )
    return {
        "prefix": prefix,
        "files": [str(f) for f in files],
        "sha256": _sha256_files(files),
        "loaded": list(expected),
        "ignored": sorted(set(found_shapes) - set(expected)),
        "parameters": int(sum(np.prod(shape, dtype=np.int64) for shape in expected.values())),
    }

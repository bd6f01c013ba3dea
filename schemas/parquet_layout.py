"""Checks of a Parquet shard's columns against the layout it should have.

The Parquet counterpart of the HDF5 layout checks (:func:`schemas.shards.hdf5_problems`,
:func:`schemas.embeddings.embedding_hdf5_problems`): each returns the ways a file departs from
its layout, as lines for ``audiomill dataset verify``, and an empty list when it conforms.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def column_problems(found: pa.Schema, expected: pa.Schema) -> list[str]:
    """The columns of ``expected`` that ``found`` lacks, or that it holds with another type.

    Parameters
    ----------
    found : pa.Schema
        A file's schema; columns beyond ``expected`` are allowed.
    expected : pa.Schema

    Returns
    -------
    list of str
        ``missing columns [...]`` alone when some are missing, else one
        ``<column>: <type>, expected <type>`` per column of another type.
    """
    types = {f.name: f.type for f in found}
    missing = [f.name for f in expected if f.name not in types]
    if missing:
        return [f"missing columns {missing}"]
    return [
        f"{f.name}: {types[f.name]}, expected {f.type}"
        for f in expected
        if not types[f.name].equals(f.type)
    ]


def label_problems(labels: pa.ChunkedArray, num_classes: int) -> list[str]:
    """Whether every class index of a ``labels`` column (lists of class indices) is one of the
    ``num_classes`` classes.

    Returns
    -------
    list of str
        Empty, or one line naming the smallest and largest index found.
    """
    bounds = pc.min_max(pc.list_flatten(labels))
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None or (low >= 0 and high < num_classes):  # None: no labels at all
        return []
    return [f"labels: class indices {low}..{high}, the dataset has classes 0..{num_classes - 1}"]

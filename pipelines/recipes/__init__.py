"""Dataset recipes: `prepare_x` (and `download_x`) turn a published layout into ingest inputs.

Each ``prepare_x`` reads a dataset as its authors publish it and writes, into an output folder,
the class map (``classes.csv``) and segment list that ``audiomill ingest`` takes, plus
``recipe.json`` and, when rows were left out, ``skipped.csv``; it returns a
:class:`~pipelines.recipes.common.RecipeResult` with the counts per split, the skipped rows
with reasons, and the ingest command(s) to run next. See :mod:`pipelines.recipes.common`.
"""

from pipelines.recipes.audioset import (
    download_audioset,
    download_audioset_embeddings,
    prepare_audioset,
)
from pipelines.recipes.common import RecipeResult, Skipped
from pipelines.recipes.folder import prepare_folder
from pipelines.recipes.fsd2019 import prepare_fsd2019
from pipelines.recipes.urbansound8k import download_urbansound8k, prepare_urbansound8k
from pipelines.recipes.whale import prepare_whale

__all__ = [
    "RecipeResult",
    "Skipped",
    "download_audioset",
    "download_audioset_embeddings",
    "download_urbansound8k",
    "prepare_audioset",
    "prepare_folder",
    "prepare_fsd2019",
    "prepare_urbansound8k",
    "prepare_whale",
]

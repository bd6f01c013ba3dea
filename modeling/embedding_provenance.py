"""Which VGGish weights a run's embeddings were made with, and checks of weights against it.

``audiomill embed`` writes the model name and the sha256 digests of the checkpoint and PCA file
into every embedding shard it writes (:mod:`schemas.embeddings`). ``train`` records them in the
run (:attr:`modeling.runs.RunConfig.embedding_provenance`), refusing shards that disagree;
``evaluate``, ``search`` and ``predict --dataset`` refuse to score shards made with other
weights than the run records (:func:`check_shards`, through
:func:`modeling.evaluation.open_split`), and ``predict`` refuses to embed audio files with
other weights (:func:`check_weights`): scores of embeddings made with other weights are
meaningless. Shards of one model made with different weights are refused wherever they are
read together. Imported shards (AudioSet's release, packed HDF5 files) record no digests: a run
on them records none, and nothing can be checked against a run or shards that record none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modeling.readers import ShardReader

DIGESTS = {"checkpoint_sha256": "checkpoint", "pca_sha256": "PCA file"}


def describe(provenance: dict[str, str | None] | None) -> str:
    """``"checkpoint sha256 cc14902716b9..., PCA file sha256 c81ef50e7229..."``, for messages."""
    if provenance is None or all(provenance.get(key) is None for key in DIGESTS):
        return "unrecorded weights (imported embeddings?)"
    return ", ".join(
        f"{what} sha256 {(provenance.get(key) or '?')[:12]}..." for key, what in DIGESTS.items()
    )


def shard_provenance(readers: Sequence[ShardReader], model: str) -> dict[str, str] | None:
    """The VGGish weights every embedding shard of ``readers`` was made with.

    Parameters
    ----------
    readers : sequence of ShardReader
        Readers of ``model``'s embedding shards (the same reader may appear twice).
    model : str
        The embedding model.

    Returns
    -------
    dict or None
        ``model``, ``checkpoint_sha256`` and ``pca_sha256``; None when no shard records the
        digests (imported embeddings).

    Raises
    ------
    ValueError
        If shards were made with different weights, or only some record theirs; the message
        names a shard of each.
    """
    found: dict[tuple[str | None, ...], str] = {}
    for reader in {id(r): r for r in readers}.values():
        for pos, shard in enumerate(reader.shards):
            attrs = reader.file_attrs(pos)
            digests = tuple(None if attrs.get(key) is None else str(attrs[key]) for key in DIGESTS)
            found.setdefault(digests, reader.store.url(shard.path))
    kinds = [dict(zip(DIGESTS, digests, strict=True)) for digests in found]
    if len(kinds) > 1:
        first, second = list(found.values())[:2]
        raise ValueError(
            f"the {model} embeddings read were made with different weights: {first} "
            f"with {describe(kinds[0])}, {second} with {describe(kinds[1])}; use splits "
            "embedded with one checkpoint and PCA file (re-embed the others)"
        )
    if not kinds or None in kinds[0].values():
        return None
    return {"model": model, **kinds[0]}


def check_shards(
    recorded: dict[str, str] | None, readers: Sequence[ShardReader], model: str, run: str
) -> None:
    """Refuse to score embedding shards made with other weights than a run's.

    Parameters
    ----------
    recorded : dict or None
        The run's :attr:`~modeling.runs.RunConfig.embedding_provenance`; None (nothing to
        check against) lets any shards of one kind of weights through.
    readers : sequence of ShardReader
        Readers of ``model``'s embedding shards to be scored.
    model : str
        The embedding model.
    run : str
        The run directory, for messages.

    Raises
    ------
    ValueError
        If the shards were made with different weights (:func:`shard_provenance`), or record
        other weights than ``recorded``; the message names the run, a shard and both weights.
    """
    provenance = shard_provenance(readers, model)
    if recorded is None or provenance is None:
        return
    if all(provenance[key] == recorded[key] for key in DIGESTS):
        return
    shard = next(r.store.url(s.path) for r in readers for s in r.shards)
    raise ValueError(
        f"run {run} was trained on {model} embeddings made with {describe(recorded)}, but "
        f"{shard} was made with {describe(provenance)}: "
        "scores of embeddings from other weights are meaningless; re-embed the dataset with "
        f"the run's checkpoint and PCA file (into a copy, or after deleting embeddings/{model})"
    )


def check_weights(
    recorded: dict[str, str] | None,
    actual: dict[str, str],
    run: str,
    checkpoint: str,
    pca_params: str,
) -> str | None:
    """Refuse VGGish files other than those a run's embeddings were made with.

    Parameters
    ----------
    recorded : dict or None
        The run's :attr:`~modeling.runs.RunConfig.embedding_provenance`.
    actual : dict
        ``checkpoint_sha256`` and ``pca_sha256`` of the files given.
    run : str
        The run directory, for messages.
    checkpoint, pca_params : str
        The files given, for messages.

    Returns
    -------
    str or None
        A one-line warning when the run records no weights to check against.

    Raises
    ------
    ValueError
        If a digest differs; the message names both files and each digest that differs.
    """
    if recorded is None:
        return (
            f"run {run} records no VGGish weights (trained before they were recorded, or on "
            f"imported embeddings): cannot check that {checkpoint} and {pca_params} are the "
            "ones its embeddings were made with"
        )
    given = {
        "checkpoint_sha256": f"--checkpoint {checkpoint}",
        "pca_sha256": f"--pca-params {pca_params}",
    }
    differ = [
        f"{given[key]} (sha256 {actual[key][:12]}...) is not the {what} the embeddings of run "
        f"{run} were made with (sha256 {recorded[key][:12]}...)"
        for key, what in DIGESTS.items()
        if actual[key] != recorded[key]
    ]
    if not differ:
        return None
    same = [given[key] for key in DIGESTS if actual[key] == recorded[key]]
    raise ValueError(
        "; ".join(differ)
        + (f" ({same[0]} matches)" if same else "")
        + ": scores of embeddings from other weights are meaningless; pass the files the "
        "training data was embedded with"
    )

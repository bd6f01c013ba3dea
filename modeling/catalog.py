"""The models and tasks audiomill trains, by name, without importing TensorFlow.

The command line declares its ``--model`` and ``--task`` values from here, so a workflow's
checks refuse a misspelt one before anything runs; :mod:`modeling.models` builds the models
these names stand for, and :mod:`modeling.evaluation` knows from their inputs which ones pool
their frames.
"""

from __future__ import annotations

TASKS = ("multilabel", "singlelabel")
"""Task heads: sigmoid outputs (multi-label) or a softmax over the classes (single-label)."""

MODEL_INPUTS = {
    "cnn14": "waveform",
    "decision_level_attention": "embedding",
    "mlp_baseline": "embedding",
    "multi_level_attention": "embedding",
    "single_level_attention": "embedding",
    "small_cnn": "waveform",
}
"""Each model by name, with the input it takes."""

MODELS = tuple(sorted(MODEL_INPUTS))
"""The model names, sorted."""

EMBEDDING_MODELS = frozenset(name for name, kind in MODEL_INPUTS.items() if kind == "embedding")
"""The models on embeddings: each pools a clip's frames regardless of their order."""

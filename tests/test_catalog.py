"""modeling/catalog.py: the model and task names the command line declares are those modeling
builds (tests/test_evaluation_tta_order_free.py checks that the embedding models pool their
frames)."""

from __future__ import annotations

import pytest

from modeling.catalog import MODEL_INPUTS, MODELS, TASKS


def test_the_catalog_names_every_registered_model_with_its_input() -> None:
    from modeling.models import model_names

    assert dict(model_names()) == MODEL_INPUTS
    assert list(MODELS) == sorted(MODEL_INPUTS)


def test_models_accept_exactly_the_catalog_tasks() -> None:
    from modeling.models import check_task

    for task in TASKS:
        check_task(task)
    with pytest.raises(ValueError, match="task must be one of"):
        check_task("regression")

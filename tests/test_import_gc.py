"""Imports without the cyclic collector: off inside, frozen after, garbage from before reclaimed."""

from __future__ import annotations

import gc
import weakref

import pytest

from workflows.import_gc import collection_paused, thawed_on_exit


class Node:
    def __init__(self) -> None:
        self.self_ref = self


@pytest.fixture(autouse=True)
def restore_collector():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_collector_off_inside_and_back_on_after():
    gc.enable()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_objects_made_inside_are_frozen():
    before = gc.get_freeze_count()
    with collection_paused():
        made = [[i] for i in range(5000)]
    assert gc.get_freeze_count() >= before + len(made)


def test_garbage_from_before_is_collected_not_frozen():
    gc.disable()
    node = Node()
    ref = weakref.ref(node)
    del node
    assert ref() is not None  # a cycle: reference counting alone keeps it
    with collection_paused():
        assert ref() is None


def test_an_enclosing_pause_stays_in_force():
    gc.disable()
    with collection_paused():
        pass
    assert not gc.isenabled()


def test_state_restored_when_the_block_raises():
    gc.enable()
    with pytest.raises(ImportError), collection_paused():
        import audiomill_no_such_module  # noqa: F401
    assert gc.isenabled()


def test_thawed_on_exit_returns_frozen_objects_to_the_collector():
    gc.enable()
    with pytest.raises(SystemExit), thawed_on_exit():
        with collection_paused():
            made = [[i] for i in range(1000)]
        assert gc.get_freeze_count() >= len(made)
        raise SystemExit(0)  # how a Typer command line ends
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()

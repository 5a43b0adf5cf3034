"""core/gcpause.py: the cyclic collector is off inside the block and as it was after it."""

import gc

import pytest

from core.gcpause import cyclic_gc_paused


@pytest.fixture(autouse=True)
def _collector_restored():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_the_collector_is_off_inside_and_back_on_after():
    gc.enable()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_it_is_back_on_after_an_error():
    gc.enable()
    with pytest.raises(ZeroDivisionError), cyclic_gc_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with cyclic_gc_paused():
        pass
    assert not gc.isenabled()


def test_nested_blocks_leave_it_on_only_when_the_outer_ends():
    gc.enable()
    with cyclic_gc_paused():
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def _automatic_collections_while(allocating: int) -> int:
    """How many collections the interpreter started by itself while ``allocating`` containers
    were made (gc.callbacks hear every collection, automatic or not)."""
    started: list[dict] = []

    def heard(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(info)

    gc.callbacks.append(heard)
    try:
        kept: list[list[int]] = [[] for _ in range(allocating)]
    finally:
        gc.callbacks.remove(heard)
    del kept
    return len(started)


def test_no_automatic_collection_runs_inside_and_they_resume_after():
    gc.enable()
    allocating = 20 * gc.get_threshold()[0]
    with cyclic_gc_paused():
        assert _automatic_collections_while(allocating) == 0
    assert _automatic_collections_while(allocating) > 0

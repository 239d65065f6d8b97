"""The per-object serializer: one operation at a time per object, concurrency across objects."""

import gevent
import gevent.event
import pykka
import pytest

from actors import OperationTimeout, Serializer


@pytest.fixture
def serializer():
    running = Serializer(timeout=5)
    yield running
    running.stop()


def test_operations_on_one_object_never_interleave(serializer):
    events = []

    def operation(n):
        events.append(("start", n))
        gevent.sleep(0.01)
        events.append(("end", n))
        return n

    results = [gevent.spawn(serializer.run, "subnet:1", operation, n) for n in range(5)]
    gevent.joinall(results, raise_error=True)
    assert sorted(r.value for r in results) == list(range(5))
    for index in range(0, len(events), 2):
        assert events[index][0] == "start" and events[index + 1] == ("end", events[index][1])


def test_operations_on_different_objects_overlap(serializer):
    running = set()
    overlapped = []

    def operation(key):
        running.add(key)
        gevent.sleep(0.02)
        overlapped.append(len(running) > 1)
        running.discard(key)

    gevent.joinall([gevent.spawn(serializer.run, f"subnet:{n}", operation, n) for n in range(3)], raise_error=True)
    assert any(overlapped)


def test_errors_reach_the_caller_and_the_object_stays_usable(serializer):
    def fail():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        serializer.run("k", fail)
    assert serializer.run("k", lambda: 42) == 42


def test_a_gevent_timeout_inside_does_not_stop_other_actors(serializer):
    def slow():
        with gevent.Timeout(0.01):
            gevent.sleep(1)

    with pytest.raises(OperationTimeout):
        serializer.run("k", slow)
    assert serializer.run("other", lambda: "alive") == "alive"


def test_idle_object_actors_are_stopped(serializer):
    serializer.run("a", lambda: None)
    serializer.run("b", lambda: None)
    assert serializer.active_objects() == 0
    # Stopping is asynchronous: wait (boundedly) until only the registry actor is left.
    for _ in range(200):
        if len(pykka.ActorRegistry.get_all()) == 1:
            break
        gevent.sleep(0.01)
    assert len(pykka.ActorRegistry.get_all()) == 1


def test_a_caller_that_stops_waiting_never_frees_an_owner_still_at_work():
    impatient = Serializer(timeout=0.05)
    events = []
    first_may_end = gevent.event.Event()

    def first():
        events.append("first starts")
        first_may_end.wait(10)
        events.append("first ends")

    def second():
        events.append("second starts")

    try:
        with pytest.raises(OperationTimeout):
            impatient.run("subnet:1", first)
        # The first caller gave up; the owner of subnet:1 is still busy with its operation. The second
        # caller gives up too (same short timeout), but its operation stays queued behind the first.
        with pytest.raises(OperationTimeout):
            impatient.run("subnet:1", second)
        assert events == ["first starts"]
        first_may_end.set()
        for _ in range(1000):  # bounded: until the queued operation ran
            if len(events) == 3:
                break
            gevent.sleep(0.01)
        assert events == ["first starts", "first ends", "second starts"]
    finally:
        first_may_end.set()
        impatient.stop()


def test_owners_nest_and_re_enter(serializer):
    def inner():
        # Re-entering a key the chain holds runs inline instead of waiting for itself.
        return serializer.run("project:1", lambda: "re-entered")

    assert serializer.run("project:1", lambda: serializer.run("zone:1", inner)) == "re-entered"
    assert serializer.run_all(["adapter:2", "project:1", "zone:1"], lambda: "all held") == "all held"


def test_nested_owners_must_follow_the_key_order(serializer):
    with pytest.raises(RuntimeError, match="KEY_ORDER"):
        serializer.run("zone:1", lambda: serializer.run("project:1", lambda: None))

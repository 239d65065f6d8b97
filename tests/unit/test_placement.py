"""kahuna.placement: the Kaktus election (successor names, siblings, capacity, score, ties)."""

import pytest

from kahuna.placement import GIB, SIBLING_MALUS, Node, are_siblings, edit_distance, elect, successor, why_none_fits


@pytest.mark.parametrize(("text", "expected"), [
    ("", ""),
    ("a", "b"),
    ("az", "ba"),
    ("zz", "aaa"),
    ("Az", "Ba"),
    ("Zz", "AAa"),
    ("9", "10"),
    ("a9", "b0"),
    ("zz99", "aaa00"),
    ("web-1", "web-2"),
    ("web-9", "wec-0"),  # the carry crosses non-alphanumerics
    ("a-z", "b-a"),
    ("1.9", "2.0"),
    ("***", "**+"),  # no alphanumeric: the last character is incremented
])
def test_successor_is_rubys_string_succ(text, expected):
    assert successor(text) == expected


@pytest.mark.parametrize(("a", "b", "distance"), [
    ("", "", 0),
    ("abc", "", 3),
    ("", "abc", 3),
    ("web-1", "web-1", 0),
    ("web-1", "web-2", 1),
    ("web-1", "web-12", 1),
    ("ab", "ba", 2),
    ("kitten", "sitting", 3),
])
def test_edit_distance(a, b, distance):
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


@pytest.mark.parametrize(("a", "b", "siblings"), [
    ("web-1", "web-2", True),
    ("web-az", "web-ba", True),  # successors, 2 edits apart
    ("web-ba", "web-az", True),  # either way round
    ("web-9", "web-10", False),  # "web-9".succ is "wec-0", and they are 2 edits apart
    ("db", "dc", True),  # one edit
    ("web", "web", True),
    ("web-1", "web-3", True),  # one edit, not successors
    ("web-1", "web-13", True),
    ("web", "db", False),
    ("alpha", "omega", False),
    ("web-10", "web-12", True),
    ("web-19", "web-21", False),
])
def test_siblings_are_successors_or_one_edit_apart(a, b, siblings):
    assert are_siblings(a, b) is siblings


def node(kaktus_id="k1", online=True, vcpu_capacity=8, memory_capacity=16 * GIB, vcpus=0, memory=0, names=(),
         maintenance=False, zone_id="a"):
    return Node(kaktus_id, f"kaktus-{kaktus_id}", online, vcpu_capacity, memory_capacity, vcpus, memory, list(names),
                zone_id=zone_id, maintenance=maintenance)


@pytest.mark.parametrize(("candidate", "vcpus", "memory", "fits"), [
    (node(), 8, 16 * GIB, True),  # exactly full
    (node(), 9, GIB, False),
    (node(), 1, 16 * GIB + 1, False),
    (node(vcpus=6, memory=8 * GIB), 2, 8 * GIB, True),
    (node(vcpus=6, memory=8 * GIB), 3, GIB, False),
    (node(online=False), 1, GIB, False),
    (node(vcpu_capacity=0, memory_capacity=0), 1, 1, False),  # an agent that reported nothing
])
def test_a_node_fits_what_its_capacity_still_holds(candidate, vcpus, memory, fits):
    assert candidate.fits(vcpus, memory) is fits
    assert candidate.has_room(vcpus, memory) is fits


def test_a_node_in_maintenance_takes_nothing_new_but_has_room_for_its_own_instances():
    closed = node(vcpus=2, memory=2 * GIB, maintenance=True)
    assert (closed.fits(1, GIB), closed.has_room(1, GIB), closed.has_room(7, GIB)) == (False, True, False)


@pytest.mark.parametrize(("candidate", "name", "score"), [
    (node(), "web-1", 0),
    (node(vcpus=4, memory=3 * GIB + 5, names=["db-1", "cache"]), "web-1", 2 * 2 + 4 + 3),
    (node(vcpus=1, memory=GIB, names=["web-1"]), "web-2", 2 + 1 + 1 + SIBLING_MALUS),
    (node(vcpus=2, memory=2 * GIB, names=["web-1", "web-3"]), "web-2", 4 + 2 + 2 + 2 * SIBLING_MALUS),
])
def test_score(candidate, name, score):
    assert candidate.score(name) == score


def test_the_lowest_score_wins():
    busy = node("k1", vcpus=4, memory=4 * GIB, names=["a", "b"])
    idle = node("k2")
    assert elect([busy, idle], "web-1", 1, GIB) is idle


def test_siblings_are_spread_over_the_nodes():
    with_web_1 = node("k1", vcpus=1, memory=GIB, names=["web-1"])
    with_db = node("k2", vcpus=4, memory=8 * GIB, names=["db-1"])
    assert elect([with_web_1, with_db], "web-2", 1, GIB) is with_db


def test_ties_go_to_the_earliest_kaktus_id_whatever_the_order():
    nodes = [node("k3"), node("k1"), node("k2")]
    assert elect(nodes, "web-1", 1, GIB).kaktus_id == "k1"


def test_nodes_that_cannot_take_it_are_not_elected():
    nodes = [node("k1", online=False), node("k2", vcpus=8), node("k3", vcpus=7, memory=15 * GIB, names=["x"] * 9)]
    assert elect(nodes, "web-1", 1, GIB).kaktus_id == "k3"


def test_nodes_in_maintenance_are_never_elected():
    nodes = [node("k1", maintenance=True), node("k2", vcpus=7, names=["web-2"] * 3)]
    assert elect(nodes, "web-1", 1, GIB).kaktus_id == "k2"  # loaded, and a sibling's host, but open
    assert elect([node("k1", maintenance=True)], "web-1", 1, GIB) is None


def test_across_zones_the_least_loaded_node_wins():
    nodes = [node("k1", zone_id="a", vcpus=2, names=["db-1"]), node("k2", zone_id="b", vcpus=1, names=["db-2"]),
             node("k3", zone_id="b", maintenance=True)]
    assert elect(nodes, "web-1", 1, GIB).zone_id == "b"


def test_excluded_nodes_are_not_elected():
    nodes = [node("k1"), node("k2", vcpus=4)]
    assert elect(nodes, "web-1", 1, GIB, exclude=frozenset({"k1"})).kaktus_id == "k2"
    assert elect(nodes, "web-1", 1, GIB, exclude=frozenset({"k1", "k2"})) is None


@pytest.mark.parametrize(("nodes", "reason"), [
    ([], "the zone has no Kaktus"),
    ([node(online=False), node("k2", online=False)], "no Kaktus of the zone has a connected agent"),
    ([node(vcpus=8), node("k2", online=False)],
     "no Kaktus of the zone has room for 2 vCPU(s) and 3 GiB of memory (capacity is threads x CPU overcommit and "
     "memory x memory overcommit)"),
    ([node(maintenance=True), node("k2", online=False, maintenance=True)],
     "every Kaktus of the zone is in maintenance"),
    ([node(maintenance=True), node("k2", online=False)],
     "no Kaktus of the zone has a connected agent (1 in maintenance)"),
    ([node(maintenance=True), node("k2", vcpus=8)],
     "no Kaktus of the zone has room for 2 vCPU(s) and 3 GiB of memory (capacity is threads x CPU overcommit and "
     "memory x memory overcommit) (1 in maintenance)"),
])
def test_why_none_fits(nodes, reason):
    assert elect(nodes, "web-1", 2, 3 * GIB) is None
    assert why_none_fits(nodes, 2, 3 * GIB) == reason


@pytest.mark.parametrize(("nodes", "exclude", "reason"), [
    ([], frozenset(), "the region has no Kaktus"),
    ([node(maintenance=True)], frozenset(), "every Kaktus of the region is in maintenance"),
    ([node(), node("k2", online=False)], frozenset({"k1"}),
     "every connected Kaktus of the region is excluded by anti-affinity (a Kwarantine group's policy, or the other "
     "VM of the same service)"),
])
def test_why_none_fits_a_region(nodes, exclude, reason):
    assert elect(nodes, "web-1", 1, GIB, exclude) is None
    assert why_none_fits(nodes, 1, GIB, exclude, scope="region") == reason

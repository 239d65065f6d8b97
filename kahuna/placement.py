"""Where a new instance goes: the Kaktus election.

A Kaktus can take a new instance when it is not in maintenance (a node in
maintenance keeps its instances and receives nothing new), one of its agents is
connected and its capacity (threads x CPU overcommit, memory x memory
overcommit, as its agent reported them) still holds the instance's vCPUs and
memory. Among those, the lowest score wins:

    score = 2 x instances + vCPUs in use + GiB of memory in use
            + 1000 for each instance already there whose name is a sibling

Two names are siblings when one is the other's successor (``web-1`` / ``web-2``,
Ruby's ``String#succ``) or when they differ by at most one edit: this spreads
``web-1``, ``web-2``... over the nodes of a zone. Ties go to the earliest Kaktus
(by id), so the election is deterministic.

The nodes are those of one zone, or of every zone of a region (a region-wide
creation: the zone follows from the node elected). Some may be excluded: the
other VM of a Konvey, the nodes a Kwarantine group's policy forbids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 1024**3
SIBLING_MALUS = 1000


def successor(text: str) -> str:
    """Ruby's ``String#succ`` on ASCII: increment the rightmost alphanumeric character, with carry."""
    if not text:
        return ""
    chars = list(text)
    positions = [i for i, c in enumerate(chars) if c.isascii() and c.isalnum()]
    if not positions:
        # No alphanumeric character: increment the last character.
        chars[-1] = chr(ord(chars[-1]) + 1)
        return "".join(chars)
    for index in reversed(positions):
        c = chars[index]
        if c == "z":
            chars[index] = "a"
        elif c == "Z":
            chars[index] = "A"
        elif c == "9":
            chars[index] = "0"
        else:
            chars[index] = chr(ord(c) + 1)
            return "".join(chars)
        carry = {"a": "a", "A": "A", "0": "1"}[chars[index]]
        if index == positions[0]:
            chars.insert(index, carry)
            return "".join(chars)
    return "".join(chars)


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def are_siblings(a: str, b: str) -> bool:
    return successor(a) == b or successor(b) == a or edit_distance(a, b) < 2


@dataclass
class Node:
    """A Kaktus as the election sees it."""

    kaktus_id: str
    name: str
    online: bool
    vcpu_capacity: int
    memory_capacity: int
    vcpus: int = 0
    memory: int = 0
    instance_names: list[str] = field(default_factory=list)
    zone_id: str = ""
    maintenance: bool = False

    def has_room(self, vcpus: int, memory: int) -> bool:
        """Whether its capacity still holds *vcpus* and *memory* more (what a resize of an instance it already
        hosts needs, even in maintenance)."""
        return self.online and self.vcpus + vcpus <= self.vcpu_capacity and self.memory + memory <= self.memory_capacity

    def fits(self, vcpus: int, memory: int) -> bool:
        """Whether it can take a new instance of this size."""
        return not self.maintenance and self.has_room(vcpus, memory)

    def score(self, name: str) -> int:
        siblings = sum(1 for other in self.instance_names if are_siblings(other, name))
        return 2 * len(self.instance_names) + self.vcpus + self.memory // GIB + SIBLING_MALUS * siblings


def elect(nodes: list[Node], name: str, vcpus: int, memory: int, exclude: frozenset[str] = frozenset()) -> Node | None:
    """The node that takes instance *name*, or None when no node can."""
    candidates = [n for n in sorted(nodes, key=lambda n: n.kaktus_id)
                  if n.kaktus_id not in exclude and n.fits(vcpus, memory)]
    if not candidates:
        return None
    return min(candidates, key=lambda n: n.score(name))


def why_none_fits(nodes: list[Node], vcpus: int, memory: int, exclude: frozenset[str] = frozenset(),
                  scope: str = "zone") -> str:
    """A sentence saying why :func:`elect` found nothing among the nodes of a *scope* (``zone`` or ``region``)."""
    if not nodes:
        return f"the {scope} has no Kaktus"
    open_nodes = [n for n in nodes if not n.maintenance]
    if not open_nodes:
        return f"every Kaktus of the {scope} is in maintenance"
    in_maintenance = len(nodes) - len(open_nodes)
    besides = f" ({in_maintenance} in maintenance)" if in_maintenance else ""
    online = [n for n in open_nodes if n.online]
    if not online:
        return f"no Kaktus of the {scope} has a connected agent{besides}"
    allowed = [n for n in online if n.kaktus_id not in exclude]
    if not allowed:
        return (f"every connected Kaktus of the {scope} is excluded by anti-affinity (a Kwarantine group's policy, "
                f"or the other VM of the same service){besides}")
    return (f"no Kaktus of the {scope} has room for {vcpus} vCPU(s) and {memory // GIB} GiB of memory "
            f"(capacity is threads x CPU overcommit and memory x memory overcommit){besides}")

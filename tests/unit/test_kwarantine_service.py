"""kahuna.services.kwarantines through the fakes: groups, membership on the member, the policy checks and the
placement exclusions the instance service and kMotion elect with."""

from types import SimpleNamespace

import pytest

from kahuna.costs import Pricing
from kahuna.errors import Conflict, NotFound, Unprocessable
from kahuna.services.dns import DnsService
from kahuna.services.kwarantines import KwarantineService
from kahuna.services.networks import SubnetService
from kahuna.services.projects import ProjectService
from kahuna.services.teams import TeamService
from tests.unit import factories as make
from tests.unit.factories import id_of


@pytest.fixture
def t(db, agents, owners):
    """eu-west: zone a (Kaktus a1, a2), zone b (Kaktus b1); projects shop and other; the service."""
    west = make.region(db, "eu-west")
    zone_a, zone_b = make.zone(db, west, "a"), make.zone(db, west, "b")
    nodes = {name: make.kaktus(db, zone, name) for name, zone in (("a1", zone_a), ("a2", zone_a), ("b1", zone_b))}
    projects = ProjectService(db, TeamService(db), SubnetService(db, owners), DnsService(db, agents, owners),
                              "kowabunga", "ssh-ed25519 K", owners, Pricing(db))
    return SimpleNamespace(
        nodes={name: id_of(node) for name, node in nodes.items()}, zones={"a": id_of(zone_a), "b": id_of(zone_b)},
        shop=id_of(make.project(db, "shop", regions=[west])), other=id_of(make.project(db, "other", regions=[west])),
        service=KwarantineService(db, owners, projects))


def vm(db, t, name, node, project=None, **fields):
    """An instance of *project* (shop) on Kaktus *node*; its id."""
    return id_of(make.instance(db, project or t.shop, t.nodes[node], name, **fields))


def kompute(db, t, name, node, project=None):
    """A Kompute and its instance (flagged as a Kompute's) on *node*: (Kompute id, instance id)."""
    project = project or t.shop
    instance_id = vm(db, t, name, node, project, kompute=True)
    made = db.komputes.insert({"name": name, "project_id": project, "instance_id": instance_id, "profile": "",
                               "profile_id": ""})
    return id_of(made), instance_id


def group(t, name="spread", policy=None, project=None):
    fields = {"name": name} if policy is None else {"name": name, "policy": policy}
    return id_of(t.service.create(project or t.shop, fields))


def shown(t, group_id):
    details = t.service.details(t.service.get(group_id))
    return details.instance_ids, details.kompute_ids


# -- groups ------------------------------------------------------------------------------------------------


def test_a_group_is_created_in_its_project_owner_with_the_host_policy_by_default(t, owners):
    created = t.service.create(t.shop, {"name": "db"})
    assert (created["name"], created["description"], created["policy"], created["project_id"]) == \
        ("db", "", "host", t.shop)
    assert owners.keys == [f"project:{t.shop}"]
    assert t.service.list_ids() == t.service.list_ids(t.shop) == [id_of(created)]
    assert t.service.list_ids(t.other) == []
    assert shown(t, id_of(created)) == ([], [])


def test_names_are_unique_per_project(t):
    group(t, "db")
    with pytest.raises(Conflict, match="already has a Kwarantine named db"):
        group(t, "db", policy="zone")
    assert group(t, "db", project=t.other)  # another project may use it


def test_no_group_in_a_missing_or_dying_project_and_no_unknown_policy(db, t):
    with pytest.raises(NotFound):
        t.service.create("0" * 24, {"name": "db"})
    dying = id_of(make.project(db, "dying", state="deleting"))
    with pytest.raises(NotFound):
        t.service.create(dying, {"name": "db"})
    with pytest.raises(Unprocessable, match="host, zone"):
        t.service.create(t.shop, {"name": "db", "policy": "rack"})
    with pytest.raises(NotFound):
        t.service.list_ids("0" * 24)
    assert db.kwarantines.ids() == []


def test_an_update_changes_only_what_it_carries(t, owners):
    group_id = group(t, "db")
    owners.keys.clear()
    assert t.service.update(group_id, {"description": "primaries"})["name"] == "db"
    assert t.service.update(group_id, {})["description"] == "primaries"
    changed = t.service.update(group_id, {"name": "databases", "policy": "zone"})
    assert (changed["name"], changed["description"], changed["policy"]) == ("databases", "primaries", "zone")
    assert owners.keys == [f"kwarantine:{group_id}"] * 3
    group(t, "web")
    with pytest.raises(Conflict, match="named web"):
        t.service.update(group_id, {"name": "web"})
    with pytest.raises(Unprocessable):
        t.service.update(group_id, {"policy": "rack"})
    with pytest.raises(NotFound):
        t.service.update("0" * 24, {"description": "x"})


def test_a_policy_the_members_already_break_is_refused(db, t):
    group_id = group(t, "db")
    for name, node in (("db-1", "a1"), ("db-2", "a2")):  # two nodes, one zone
        t.service.add_instance(group_id, vm(db, t, name, node))
    with pytest.raises(Unprocessable, match=r"instance db-1 and instance db-2 are in the same zone \(a\)"):
        t.service.update(group_id, {"policy": "zone", "name": "renamed"})
    assert (t.service.get(group_id)["policy"], t.service.get(group_id)["name"]) == ("host", "db")
    t.service.remove_instance(group_id, str(db.instances.find_one({"name": "db-2"})["_id"]))
    assert t.service.update(group_id, {"policy": "zone"})["policy"] == "zone"
    assert t.service.update(group_id, {"policy": "host"})["policy"] == "host"  # zone apart implies host apart


def test_a_group_with_members_is_not_deleted(db, t, owners):
    group_id = group(t, "db")
    member = vm(db, t, "db-1", "a1")
    t.service.add_instance(group_id, member)
    owners.keys.clear()
    with pytest.raises(Conflict, match=r"still has 1 member\(s\) \(db-1\)"):
        t.service.delete(group_id)
    assert owners.keys == [f"kwarantine:{group_id}"]
    t.service.remove_instance(group_id, member)
    t.service.delete(group_id)
    with pytest.raises(NotFound):
        t.service.get(group_id)
    with pytest.raises(NotFound):
        t.service.delete(group_id)


def test_a_deleted_member_has_left_its_groups(db, t):
    group_id = group(t, "db")
    member = vm(db, t, "db-1", "a1")
    t.service.add_instance(group_id, member)
    db.instances.delete(member)  # what the instance service's deletion does to the document
    assert shown(t, group_id) == ([], [])
    assert t.service.exclusions([group_id], t.shop) == frozenset()
    t.service.delete(group_id)


# -- membership --------------------------------------------------------------------------------------------


def test_adding_is_idempotent_and_decided_in_the_owners_of_group_and_member(db, t, owners):
    group_id = group(t, "db")
    member = vm(db, t, "db-1", "a1")
    owners.keys.clear()
    for _ in range(2):
        assert id_of(t.service.add_instance(group_id, member)) == group_id
    assert db.instances.get(member)["kwarantine_ids"] == [group_id]
    assert shown(t, group_id) == ([member], [])
    assert [sorted(keys) for keys in owners.keys] == [[f"instance:{member}", f"kwarantine:{group_id}"]] * 2


def test_komputes_join_through_their_instance_and_are_shown_as_komputes(db, t, owners):
    group_id = group(t, "web")
    plain = vm(db, t, "web-1", "a1")
    kompute_id, its_instance = kompute(db, t, "web-2", "a2")
    t.service.add_instance(group_id, plain)
    owners.keys.clear()
    t.service.add_kompute(group_id, kompute_id)
    assert sorted(owners.keys[0]) == [f"instance:{its_instance}", f"kompute:{kompute_id}", f"kwarantine:{group_id}"]
    assert db.instances.get(its_instance)["kwarantine_ids"] == [group_id]
    assert shown(t, group_id) == ([plain], [kompute_id])
    t.service.remove_kompute(group_id, kompute_id)
    assert shown(t, group_id) == ([plain], [])
    assert db.instances.get(its_instance)["kwarantine_ids"] == []


def test_a_member_whose_placement_breaks_the_host_policy_is_refused_with_the_member_in_the_way(db, t):
    group_id = group(t, "db")
    t.service.add_instance(group_id, vm(db, t, "db-1", "a1"))
    t.service.add_instance(group_id, vm(db, t, "db-2", "a2"))  # same zone, other node: fine for host
    kompute_id, its_instance = kompute(db, t, "db-3", "a1")
    with pytest.raises(Unprocessable, match=r"Kompute db-3 cannot join Kwarantine db \(host policy\): "
                                            r"group member instance db-1 is on the same Kaktus node$"):
        t.service.add_kompute(group_id, kompute_id)
    assert "kwarantine_ids" not in db.instances.get(its_instance)


def test_a_member_whose_placement_breaks_the_zone_policy_is_refused_with_the_zone(db, t):
    group_id = group(t, "db", policy="zone")
    first_id, _ = kompute(db, t, "db-1", "a1")
    t.service.add_kompute(group_id, first_id)
    with pytest.raises(Unprocessable, match=r"instance db-2 cannot join .* Kompute db-1 is in the same zone \(a\)"):
        t.service.add_instance(group_id, vm(db, t, "db-2", "a2"))
    t.service.add_instance(group_id, vm(db, t, "db-3", "b1"))
    assert len(shown(t, group_id)[0]) == 1


def test_another_projects_member_or_a_missing_one_is_not_found(db, t):
    group_id = group(t, "db")
    theirs = vm(db, t, "theirs", "b1", project=t.other)
    their_kompute, _ = kompute(db, t, "their-kompute", "b1", project=t.other)
    for call, member_id, says in ((t.service.add_instance, theirs, f"instance {theirs} does not exist"),
                                  (t.service.remove_instance, theirs, f"instance {theirs} does not exist"),
                                  (t.service.add_kompute, their_kompute, f"Kompute {their_kompute} does not exist"),
                                  (t.service.remove_kompute, their_kompute, f"Kompute {their_kompute} does not exist"),
                                  (t.service.add_instance, "0" * 24, "does not exist"),
                                  (t.service.add_kompute, "not-an-id", "Kompute not-an-id does not exist"),
                                  (t.service.remove_instance, "not-an-id", "does not exist")):
        with pytest.raises(NotFound, match=says) as refused:
            call(group_id, member_id)
        assert "their" not in refused.value.reason  # the id given, never the other project's object's name
    mine = vm(db, t, "mine", "a1")
    for call in (t.service.add_instance, t.service.remove_instance):
        with pytest.raises(NotFound, match="Kwarantine"):
            call("0" * 24, mine)
    assert "kwarantine_ids" not in db.instances.get(theirs)


def test_removing_a_non_member_changes_nothing(db, t):
    group_id, other_group = group(t, "db"), group(t, "web")
    member = vm(db, t, "db-1", "a1")
    t.service.add_instance(other_group, member)
    assert id_of(t.service.remove_instance(group_id, member)) == group_id
    assert db.instances.get(member)["kwarantine_ids"] == [other_group]


# -- exclusions --------------------------------------------------------------------------------------------


def test_exclusions_are_the_nodes_of_the_other_members_under_the_host_policy(db, t, owners):
    group_id = group(t, "db")
    first, second = vm(db, t, "db-1", "a1"), vm(db, t, "db-2", "b1")
    for member in (first, second):
        t.service.add_instance(group_id, member)
    owners.keys.clear()
    assert t.service.exclusions([group_id], t.shop) == {t.nodes["a1"], t.nodes["b1"]}
    assert t.service.exclusions([group_id, group_id], t.shop, member_id=first) == {t.nodes["b1"]}
    assert t.service.exclusions([], t.shop) == frozenset()
    assert owners.keys == []  # the caller holds the owners: see owner_keys
    assert t.service.owner_keys([group_id, group_id]) == [f"kwarantine:{group_id}"]


def test_exclusions_are_every_node_of_the_other_members_zones_under_the_zone_policy(db, t):
    hosts, zones = group(t, "hosts"), group(t, "zones", policy="zone")
    t.service.add_instance(zones, vm(db, t, "db-1", "a2"))
    assert t.service.exclusions([zones], t.shop) == {t.nodes["a1"], t.nodes["a2"]}
    t.service.add_instance(hosts, vm(db, t, "web-1", "b1"))
    assert t.service.exclusions([hosts, zones], t.shop) == set(t.nodes.values())
    assert t.service.exclusions([hosts], t.shop) == {t.nodes["b1"]}


def test_exclusions_refuse_groups_that_are_not_the_projects(t):
    theirs = group(t, "db", project=t.other)
    for group_id in (theirs, "0" * 24, "not-an-id"):
        with pytest.raises(NotFound, match=f"Kwarantine {group_id} does not exist"):
            t.service.exclusions([group_id], t.shop)


def moving(db, instance_id, t, source, target):
    """*instance_id* being moved by kMotion from Kaktus *source* to *target*, as the claim writes it."""
    zone_of = {name: db.kaktuses.get(node)["zone_id"] for name, node in t.nodes.items()}
    db.instances.update(instance_id, {"kaktus_id": t.nodes[target], "zone_id": zone_of[target], "state": "updating",
                                      "kmotion": {"source_kaktus_id": t.nodes[source],
                                                  "source_zone_id": zone_of[source],
                                                  "target_kaktus_id": t.nodes[target]}})


def test_a_member_being_moved_holds_its_source_and_its_target(db, t):
    """A failed kMotion puts the member back on its source: until the move is over, both places are its."""
    hosts, zones = group(t, "hosts"), group(t, "zones", policy="zone")
    first = vm(db, t, "db-1", "a1")
    t.service.add_instance(hosts, first)
    t.service.add_instance(zones, first)
    moving(db, first, t, "a1", "b1")
    assert t.service.exclusions([hosts], t.shop) == {t.nodes["a1"], t.nodes["b1"]}
    assert t.service.exclusions([zones], t.shop) == set(t.nodes.values())
    assert t.service.exclusions([hosts], t.shop, member_id=first) == frozenset()
    # Joining next to where it comes from, or where it goes, is refused.
    for name, node in (("db-2", "a1"), ("db-3", "b1")):
        with pytest.raises(Unprocessable, match=f"instance {name} cannot join .* instance db-1 is on the same Kaktus"):
            t.service.add_instance(hosts, vm(db, t, name, node))
    t.service.add_instance(hosts, vm(db, t, "db-4", "a2"))
    # A policy it would break from its source is refused too.
    other = group(t, "other")
    t.service.add_instance(other, first)
    t.service.add_instance(other, vm(db, t, "db-5", "a2"))
    with pytest.raises(Unprocessable, match=r"instance db-1 and instance db-5 are in the same zone \(a\)"):
        t.service.update(other, {"policy": "zone"})


def test_another_projects_member_is_refused_before_any_owner_is_taken(db, t, owners):
    """Its instance's (or Kompute's) owner is neither held nor waited for by a request that names it wrongly."""
    group_id = group(t, "db")
    theirs = vm(db, t, "theirs", "b1", project=t.other)
    their_kompute, _ = kompute(db, t, "their-kompute", "b1", project=t.other)
    owners.keys.clear()
    for call, member_id in ((t.service.add_instance, theirs), (t.service.remove_instance, theirs),
                            (t.service.add_kompute, their_kompute), (t.service.remove_kompute, their_kompute)):
        with pytest.raises(NotFound, match=f"{member_id} does not exist"):
            call(group_id, member_id)
    assert owners.keys == []

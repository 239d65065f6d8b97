"""kahuna.services.dns through the fakes: records applied to every connected agent of the Kiwis concerned, undone
on those that applied them when one fails, domains that belong to one tenant, and the resync replay."""

from types import SimpleNamespace

import pytest

from kahuna.errors import AgentCallFailed, AgentUnavailable, Conflict, Unprocessable
from kahuna.services.dns import DnsService, normalized, overlap, within
from tests.unit import factories as make
from tests.unit.fakes import AgentCall, collection

CREATE, UPDATE, DELETE = "Kiwi.CreateDnsRecord", "Kiwi.UpdateDnsRecord", "Kiwi.DeleteDnsRecord"
ALL_KIWI_AGENTS = ("kw1", "kw2", "ke1")


@pytest.fixture
def t(db, agents, owners):
    """eu-west (an HA Kiwi: agents kw1, kw2) and eu-east (a Kiwi: ke1), all connected; project shop in both."""
    west = make.region(db, "eu-west", domain="west.acme.internal")
    east = make.region(db, "eu-east", domain="east.acme.internal")
    make.kiwi(db, west, "kiwi-west", agents=["kw1", "kw2"])
    make.kiwi(db, east, "kiwi-east", agents=["ke1"])
    agents.connect(*ALL_KIWI_AGENTS)
    shop = make.project(db, "shop", regions=[west, east], domain="shop.acme.internal")
    return SimpleNamespace(west=west, east=east, shop=shop, dns=DnsService(db, agents, owners))


def sent(method, params, to=ALL_KIWI_AGENTS):
    """The calls of *method* with *params* that the agents *to* received, in order."""
    return [AgentCall(agent_id, method, params) for agent_id in to]


def www(addresses=("10.0.0.1",)):
    return {"Domain": "shop.acme.internal", "Entry": "www", "Addresses": list(addresses)}


# -- names and domains -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "domain", "inside"), [
    ("shop.acme.internal", "shop.acme.internal", True),
    ("www.shop.acme.internal", "shop.acme.internal", True),
    ("WWW.Shop.Acme.Internal.", "shop.acme.internal", True),
    ("www.shop.acme.internal", "SHOP.acme.internal.", True),
    ("workshop.acme.internal", "shop.acme.internal", False),  # a suffix, not a label
    ("acme.internal", "shop.acme.internal", False),
    ("shop.acme.internal", "", False),
])
def test_within(name, domain, inside):
    assert within(name, domain) is inside
    assert overlap(name, domain) is (inside or within(domain, name))


@pytest.mark.parametrize(("domain", "expected"), [(" Shop.ACME.internal. ", "shop.acme.internal"), ("", ""),
                                                  (None, "")])
def test_normalized(domain, expected):
    assert normalized(domain) == expected


@pytest.mark.parametrize(("domain", "project_id", "taken_by"), [
    ("shop.acme.internal", "", "another project"),
    ("SHOP.acme.internal.", "", "another project"),
    ("api.shop.acme.internal", "", "another project"),  # within
    ("acme.internal", "", "another project"),  # above
    ("west.acme.internal", "", "a region"),
    ("dc1.west.acme.internal", "", "a region"),
    ("shop.acme.internal", "shop", None),  # the project's own
    ("workshop.acme.internal", "", None),
    ("shop2.acme.internal", "", None),
])
def test_a_project_domain_overlaps_no_other_projects_nor_regions(t, domain, project_id, taken_by):
    project_id = str(t.shop["_id"]) if project_id else ""
    if taken_by is None:
        t.dns.check_project_domain(domain, project_id)
        return
    with pytest.raises(Conflict) as caught:
        t.dns.check_project_domain(domain, project_id)
    assert caught.value.reason == (f"domain {domain} is not available: it is, or lies within or above, the domain "
                                   f"of {taken_by}")


def test_a_domain_is_claimed_in_the_owner_of_all_domains(t, owners):
    assert t.dns.claim_project_domain("new.acme.internal", lambda: "inserted") == "inserted"
    assert owners.keys == ["domains"]
    with pytest.raises(Conflict):
        t.dns.claim_project_domain("www.shop.acme.internal", lambda: pytest.fail("inserted anyway"))
    assert t.dns.claim_project_domain("", lambda: "no domain") == "no domain"
    assert owners.keys == ["domains", "domains"]


@pytest.mark.parametrize(("domain", "refused"), [("acme.internal", True), ("www.shop.acme.internal", True),
                                                 ("north.acme.internal", False)])
def test_a_region_domain_overlaps_no_project(t, domain, refused):
    if refused:
        with pytest.raises(Conflict, match="of a project"):
            t.dns.check_region_domain(domain)
    else:
        t.dns.check_region_domain(domain)


# -- records -------------------------------------------------------------------------------------------


def test_a_project_record_goes_to_every_connected_agent_of_the_projects_regions(db, agents, owners, t):
    record = t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "the shop",
                          ["10.0.0.1", "10.0.0.2", "10.0.0.1"])
    assert record["addresses"] == ["10.0.0.1", "10.0.0.2"]  # de-duplicated
    assert (record["project_id"], record["region_id"]) == (str(t.shop["_id"]), "")
    assert db.records.get(record["_id"])["name"] == "www"
    assert agents.calls == sent(CREATE, www(["10.0.0.1", "10.0.0.2"]))
    assert f"project:{t.shop['_id']}" in owners.keys  # inserted where the project is deleted


def test_a_region_record_goes_to_that_regions_kiwis_only(db, agents, owners, t):
    record = t.dns.create("region_id", t.west, "west.acme.internal", "gw", "", ["198.51.50.1"])
    assert (record["region_id"], record["project_id"]) == (str(t.west["_id"]), "")
    assert agents.calls == sent(CREATE, {"Domain": "west.acme.internal", "Entry": "gw",
                                                 "Addresses": ["198.51.50.1"]}, to=("kw1", "kw2"))
    assert owners.keys == ["domains", f"region:{t.west['_id']}"]


def test_a_region_record_cannot_land_in_a_projects_domain(db, agents, t):
    make.project(db, "legacy", regions=[t.west], domain="legacy.west.acme.internal")  # from before the rule
    with pytest.raises(Conflict) as caught:
        t.dns.create("region_id", t.west, "west.acme.internal", "www.legacy", "", ["10.0.0.1"])
    assert caught.value.reason == "www.legacy.west.acme.internal lies within the domain of a project"
    assert (agents.calls, db.records.count()) == ([], 0)


@pytest.mark.parametrize("error", [AgentCallFailed("agent kw2: record exists"), RuntimeError("decoder choked")])
def test_a_failure_on_one_agent_is_undone_on_those_that_applied_it(db, agents, t, error):
    agents.answer(CREATE, error=error, agent_id="kw2")
    with pytest.raises(AgentCallFailed) as caught:
        t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "", ["10.0.0.1"])
    assert caught.value is error or caught.value.reason == str(error)
    assert agents.calls == [*sent(CREATE, www()),
                            *sent(DELETE, {"Domain": "shop.acme.internal", "Entry": "www"}, to=("kw1", "ke1"))]
    assert db.records.count() == 0


def test_a_kiwi_without_a_connected_agent_fails_the_record_with_nothing_changed(db, agents, t):
    agents.drop("ke1")
    with pytest.raises(AgentUnavailable) as caught:
        t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "", ["10.0.0.1"])
    assert caught.value.reason == "Kiwi kiwi-east has no connected agent"
    assert (agents.calls, db.records.count()) == ([], 0)


def test_a_kiwi_without_agents_serves_nothing(db, agents, t):
    make.kiwi(db, t.east, "spare")
    t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "", ["10.0.0.1"])
    assert agents.calls == sent(CREATE, www())


def test_a_duplicate_record_is_refused_before_any_agent_hears_of_it(db, agents, t):
    t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "", ["10.0.0.1"])
    agents.forget_calls()
    with pytest.raises(Conflict) as caught:
        t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "", ["10.0.0.2"])
    assert caught.value.reason == "www.shop.acme.internal already exists"
    assert agents.calls == []
    assert db.records.count() == 1


LONG = ".".join(["a" * 63] * 3 + ["b" * 48])  # 240 characters: valid, but too long under the domain


@pytest.mark.parametrize(("domain", "name", "addresses", "reason"), [
    ("other.acme.internal", "www", ["10.0.0.1"], "the record's parent has no valid DNS domain ('other.acme.internal')"),
    ("", "www", ["10.0.0.1"], "the record's parent has no valid DNS domain ('')"),
    ("shop.acme.internal", "-www", ["10.0.0.1"], "invalid DNS name '-www'"),
    ("shop.acme.internal", "a..b", ["10.0.0.1"], "invalid DNS name 'a..b'"),
    ("shop.acme.internal", "w" * 64, ["10.0.0.1"], f"invalid DNS name '{'w' * 64}'"),
    ("shop.acme.internal", "www", [], "a DNS record needs at least one address"),
    ("shop.acme.internal", "www", ["10.0.0.300"], "invalid IP address '10.0.0.300'"),
    ("shop.acme.internal", LONG, ["10.0.0.1"],
     f"invalid DNS name '{LONG}': {LONG}.shop.acme.internal must be a name of shop.acme.internal"),
])
def test_invalid_records_are_refused_with_nothing_changed(db, agents, t, domain, name, addresses, reason):
    with pytest.raises(Unprocessable) as caught:
        t.dns.create("project_id", t.shop, domain, name, "", addresses)
    assert caught.value.reason == reason
    assert (agents.calls, db.records.count()) == ([], 0)


@pytest.mark.parametrize(("domain", "name"), [("shop.acme.internal", "*"), ("shop.acme.internal", "_dmarc"),
                                              ("shop.acme.internal", "api.v2"), ("SHOP.acme.internal.", "www")])
def test_valid_names(t, domain, name):
    assert t.dns.create("project_id", t.shop, domain, name, "", ["2001:db8::1"])["name"] == name


def test_update_changes_the_addresses_everywhere(db, agents, t):
    record = t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "", ["10.0.0.1"])
    agents.forget_calls()
    updated = t.dns.update(str(record["_id"]), "www", "new", ["10.0.0.9"])
    assert (updated["addresses"], updated["description"]) == (["10.0.0.9"], "new")
    assert agents.calls == sent(UPDATE, www(["10.0.0.9"]))


def test_a_failed_update_puts_the_old_addresses_back(db, agents, t):
    record = t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "", ["10.0.0.1"])
    agents.forget_calls()
    agents.answer(UPDATE, error=AgentCallFailed("agent ke1: no such record"), agent_id="ke1", times=1)
    with pytest.raises(AgentCallFailed):
        t.dns.update(str(record["_id"]), "www", "", ["10.0.0.9"])
    assert agents.calls == [*sent(UPDATE, www(["10.0.0.9"])),
                            *sent(UPDATE, www(["10.0.0.1"]), to=("kw1", "kw2"))]
    assert db.records.get(record["_id"])["addresses"] == ["10.0.0.1"]


def test_a_record_cannot_be_renamed(agents, t):
    record = t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "", ["10.0.0.1"])
    with pytest.raises(Unprocessable, match="a DNS record cannot be renamed: delete it and create another"):
        t.dns.update(str(record["_id"]), "shop", "", ["10.0.0.1"])


def test_delete(db, agents, t):
    record = t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "", ["10.0.0.1"])
    agents.forget_calls()
    t.dns.delete(str(record["_id"]))
    assert agents.calls == sent(DELETE, {"Domain": "shop.acme.internal", "Entry": "www"})
    assert db.records.count() == 0


def test_a_failed_delete_creates_the_record_again_where_it_was_deleted(db, agents, t):
    record = t.dns.create("project_id", t.shop, "shop.acme.internal", "www", "", ["10.0.0.1"])
    agents.forget_calls()
    agents.answer(DELETE, error=AgentCallFailed("agent kw1: busy"), agent_id="kw1")
    with pytest.raises(AgentCallFailed):
        t.dns.delete(str(record["_id"]))
    assert agents.calls[3:] == sent(CREATE, www(), to=("kw2", "ke1"))
    assert db.records.count() == 1


# -- zones and host names ------------------------------------------------------------------------------------


def test_project_zones(db, agents, t):
    t.dns.create_zone(t.shop)
    assert agents.calls == sent("Kiwi.CreateDnsZone", {"Domain": "shop.acme.internal"})
    agents.forget_calls()
    agents.answer("Kiwi.CreateDnsZone", error=AgentCallFailed("agent kw2: full"), agent_id="kw2")
    with pytest.raises(AgentCallFailed):
        t.dns.create_zone(t.shop)
    assert agents.calls[3:] == sent("Kiwi.DeleteDnsZone", {"Domain": "shop.acme.internal"}, to=("kw1", "ke1"))
    agents.forget_calls()
    t.dns.create_zone(make.project(db, "nodomain", regions=[t.west]))
    assert agents.calls == []


def test_deleting_a_zone(db, agents, t):
    agents.answer("Kiwi.DeleteDnsZone", error=AgentCallFailed("agent kw1: gone already"), agent_id="kw1")
    t.dns.delete_zone(t.shop)  # per-agent failures are only logged
    assert agents.methods() == ["Kiwi.DeleteDnsZone"] * 3
    agents.drop("ke1")
    with pytest.raises(AgentUnavailable, match="Kiwi kiwi-east has no connected agent"):
        t.dns.check_reachable(t.shop)
    with pytest.raises(AgentUnavailable):
        t.dns.delete_zone(t.shop)


def test_a_zone_shared_with_another_tenant_is_kept(db, agents, t):
    make.project(db, "twin", regions=[t.west], domain="SHOP.acme.internal.")  # from before domains were exclusive
    t.dns.delete_zone(t.shop)
    assert agents.calls == []


def test_host_names(agents, t):
    west = str(t.west["_id"])
    t.dns.add_host("shop.acme.internal", west, "web-1", ["10.50.0.10"])
    assert agents.calls == sent(CREATE, {"Domain": "shop.acme.internal", "Entry": "web-1",
                                                 "Addresses": ["10.50.0.10"]}, to=("kw1", "kw2"))
    agents.forget_calls()
    agents.answer(DELETE, error=AgentCallFailed("agent kw1: no such record"), agent_id="kw1")
    t.dns.remove_host("shop.acme.internal", west, "web-1")  # best effort
    assert agents.methods() == [DELETE, DELETE]
    agents.drop("kw1", "kw2")
    t.dns.remove_host("shop.acme.internal", west, "web-1")  # a Kiwi away forgets the name when it comes back
    assert len(agents.calls) == 2


# -- the resync replay -------------------------------------------------------------------------------------


@pytest.fixture
def served(db, t):
    """What the Kiwis of eu-west serve: a region record, the shop's record, and an instance's host name; and
    what they do not: eu-east's record, another project's, instances on their way out."""
    west_kaktus = make.kaktus(db, make.zone(db, t.west))
    east_only = make.project(db, "east-only", regions=[t.east], domain="east-only.acme.internal")
    make.record(db, "gw", "west.acme.internal", ["198.51.50.1"], region=t.west)
    make.record(db, "www", "shop.acme.internal", ["10.50.0.5"], project=t.shop)
    make.record(db, "ns", "east.acme.internal", ["198.51.60.1"], region=t.east)
    make.record(db, "api", "east-only.acme.internal", ["10.60.0.5"], project=east_only)
    for name, state in (("web-1", "ready"), ("web-2", "deleting"), ("web-3", "failed"), ("web-4", "creating")):
        make.instance(db, t.shop, west_kaktus, name, state=state, dns_domain="shop.acme.internal",
                      dns_addresses=[f"10.50.0.{10 + int(name[-1])}"])
    make.instance(db, t.shop, west_kaktus, "no-dns", dns_domain="")


REPLAYED = [("west.acme.internal", "gw", ["198.51.50.1"]), ("shop.acme.internal", "www", ["10.50.0.5"]),
            ("shop.acme.internal", "web-1", ["10.50.0.11"]), ("shop.acme.internal", "web-4", ["10.50.0.14"])]


def test_a_kiwi_agent_that_connects_is_reloaded_then_each_record_is_replayed(agents, t, served):
    t.dns.on_agents_connected(["kw1"])
    assert agents.calls[0] == AgentCall("kw1", "Kiwi.Reload", {"Domains": [
        {"Name": "west.acme.internal", "Records": [{"Name": "gw", "Type": "A", "Addresses": ["198.51.50.1"]}]},
        {"Name": "shop.acme.internal", "Records": [
            {"Name": name, "Type": "A", "Addresses": addresses} for _, name, addresses in REPLAYED[1:]]},
    ]})
    assert agents.calls[1:] == [AgentCall("kw1", CREATE, {"Domain": domain, "Entry": name, "Addresses": addresses})
                                for domain, name, addresses in REPLAYED]


def test_each_agent_that_connects_is_brought_up_to_date_whatever_another_does(agents, t, served):
    agents.answer("Kiwi.Reload", error=AgentCallFailed("agent kw1: reload failed"), agent_id="kw1")
    t.dns.on_agents_connected(["kw1", "kw2", "ke1", "stranger"])
    assert agents.methods("kw1") == ["Kiwi.Reload"]  # nothing replayed onto an agent that was not reloaded
    assert agents.methods("kw2") == ["Kiwi.Reload"] + [CREATE] * len(REPLAYED)
    assert [p["Entry"] for p in agents.params_of(CREATE, "ke1")] == ["www", "ns", "api"]
    assert agents.calls_of(agent_id="stranger") == []


def test_a_record_the_reload_installed_already_is_fine_but_an_agent_gone_stops_the_replay(agents, t, served):
    agents.answer(CREATE, error=AgentCallFailed("agent kw1: record exists"), agent_id="kw1")
    agents.answer(CREATE, error=AgentUnavailable("agent kw2 is not connected"), agent_id="kw2")
    t.dns.on_agents_connected(["kw1", "kw2"])
    assert agents.methods("kw1") == ["Kiwi.Reload"] + [CREATE] * len(REPLAYED)
    assert agents.methods("kw2") == ["Kiwi.Reload", CREATE]


def test_a_record_deleted_during_the_replay_is_deleted_from_the_agent(db, agents, t, served):
    def delete_www_meanwhile(agent_id, params):
        collection(db, "dns_record").delete_many({"name": "www"})

    agents.answer(CREATE, delete_www_meanwhile, agent_id="kw1", times=1)
    t.dns.on_agents_connected(["kw1"])
    assert agents.calls[-1] == AgentCall("kw1", DELETE, {"Domain": "shop.acme.internal", "Entry": "www"})
    assert len(agents.calls_of(CREATE)) == len(REPLAYED)


def test_a_name_with_a_final_newline_is_refused(db, agents, t):
    with pytest.raises(Unprocessable):
        t.dns.create("project_id", t.shop, "shop.acme.internal", "www\n", "", ["10.0.0.1"])
    assert agents.calls == []

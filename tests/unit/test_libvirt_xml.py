"""kahuna.libvirt_xml: the libvirt domain the Kaktus agents define, read back as XML."""

import xml.etree.ElementTree as ET

import pytest

from kahuna.libvirt_xml import (
    MIB,
    Disk,
    Nic,
    Storage,
    disk_device,
    domain_xml,
    seed_device,
    set_resources,
    uefi_machine,
)

GIB = 1024**3
CEPH = Storage(address="ceph.acme.internal", port=3300, secret_uuid="5b1c-secret")


@pytest.mark.parametrize(("index", "device"), [
    (0, "vda"), (1, "vdb"), (25, "vdz"), (26, "vdaa"), (27, "vdab"), (51, "vdaz"), (52, "vdba"), (701, "vdzz"),
    (702, "vdaaa"),
])
def test_disk_device(index, device):
    assert disk_device(index) == device


def domain(**overrides):
    arguments = {
        "name": "web-1", "vcpus": 2, "memory": 4 * GIB, "arch": "x86_64", "machine": "pc-q35-8.2",
        "emulator": "/usr/bin/qemu-system-x86_64", "storage": CEPH,
        "disks": [Disk("vda", "rbd-ssd", "web-1-os"), Disk("vdb", "rbd-ssd", "web-1-data")],
        "seed": Disk("hdd", "rbd-ssd", "web-1-seed"),
        "nics": [Nic("da:1e:70:00:00:01", "br0", 0), Nic("da:1e:70:00:00:02", "br100", 100)],
    }
    return ET.fromstring(domain_xml(**{**arguments, **overrides}))


def test_the_domain():
    root = domain()
    assert (root.tag, root.get("type"), root.findtext("name")) == ("domain", "kvm", "web-1")
    for tag in ("memory", "currentMemory"):
        assert (root.find(tag).get("unit"), root.findtext(tag)) == ("MiB", "4096")
    assert root.findtext("vcpu") == "2"
    os_type = root.find("os/type")
    assert (os_type.text, os_type.get("arch"), os_type.get("machine")) == ("hvm", "x86_64", "pc-q35-8.2")
    assert root.find("os/boot").get("dev") == "hd"
    assert root.find("cpu").get("mode") == "host-passthrough"
    assert root.findtext("devices/emulator") == "/usr/bin/qemu-system-x86_64"
    assert root.find("devices/memballoon").get("model") == "virtio"


def test_disks_are_rbd_images_in_order_then_the_seed_as_a_read_only_cdrom():
    disks = domain().findall("devices/disk")
    assert [(d.get("device"), d.find("target").get("dev"), d.find("target").get("bus")) for d in disks] == [
        ("disk", "vda", "virtio"), ("disk", "vdb", "virtio"), ("cdrom", "hdd", "ide")]
    assert [d.find("source").get("name") for d in disks] == ["rbd-ssd/web-1-os", "rbd-ssd/web-1-data",
                                                             "rbd-ssd/web-1-seed"]
    for disk in disks:
        assert disk.get("type") == "network"
        assert disk.find("source").get("protocol") == "rbd"
        host = disk.find("source/host")
        assert (host.get("name"), host.get("port")) == ("ceph.acme.internal", "3300")
        assert disk.find("driver").attrib == {"name": "qemu", "type": "raw", "cache": "writeback"}
        assert disk.find("auth").get("username") == "libvirt"
        assert disk.find("auth/secret").attrib == {"type": "ceph", "uuid": "5b1c-secret"}
    assert [disk.find("readonly") is not None for disk in disks] == [False, False, True]


def test_nics_are_bridged_and_tagged_with_their_vlan():
    interfaces = domain().findall("devices/interface")
    assert [(i.get("type"), i.find("mac").get("address"), i.find("source").get("bridge")) for i in interfaces] == [
        ("bridge", "da:1e:70:00:00:01", "br0"), ("bridge", "da:1e:70:00:00:02", "br100")]
    assert interfaces[0].find("vlan") is None  # VLAN 0: untagged
    assert interfaces[1].find("vlan/tag").get("id") == "100"
    assert all(i.find("model").get("type") == "virtio" for i in interfaces)


def test_bios_is_the_default_firmware():
    root = domain()
    assert root.find("os").get("firmware") is None
    assert root.find("os/loader") is None and root.find("os/firmware") is None
    assert root.find("features/smm") is None
    assert ET.tostring(root) == ET.tostring(domain(uefi=False))


@pytest.mark.parametrize(("machine", "expected"), [("pc-q35-8.2", "pc-q35-8.2"), ("pc-i440fx-8.2", "q35"),
                                                   ("pc", "q35"), ("", "q35")])
def test_uefi_is_secure_boot_ovmf_on_q35(machine, expected):
    assert uefi_machine(machine) == expected
    root = domain(uefi=True, machine=machine, seed=Disk(seed_device(True), "rbd-ssd", "web-1-seed"))
    os = root.find("os")
    assert os.get("firmware") == "efi"
    assert (os.find("type").get("machine"), os.find("type").text) == (expected, "hvm")
    assert os.find("loader").attrib == {"readonly": "yes", "secure": "yes", "type": "pflash"}
    assert {f.get("name"): f.get("enabled") for f in os.findall("firmware/feature")} == {
        "secure-boot": "yes", "enrolled-keys": "yes"}
    assert [child.tag for child in os] == ["type", "firmware", "loader", "boot"]  # libvirt's order
    assert root.find("features/smm").get("state") == "on"  # secure boot needs SMM
    seed = root.findall("devices/disk")[-1]
    assert (seed.get("device"), seed.find("target").get("dev"), seed.find("target").get("bus")) == (
        "cdrom", "sda", "sata")  # q35 has no IDE controller
    assert [d.find("target").get("bus") for d in root.findall("devices/disk")[:-1]] == ["virtio", "virtio"]


def test_the_seed_device_follows_the_firmware():
    assert (seed_device(False), seed_device(True)) == ("hdd", "sda")


def test_optional_parts():
    root = domain(arch="", machine="", emulator="", seed=None, nics=[], disks=[Disk("vda", "hdd", "os")],
                  storage=Storage("10.0.0.1", 6789, ""))
    assert (root.find("os/type").get("arch"), root.find("os/type").get("machine")) == ("x86_64", "pc")
    assert root.find("devices/emulator") is None
    assert [d.get("device") for d in root.findall("devices/disk")] == ["disk"]
    assert root.find("devices/disk/auth") is None  # no cephx secret
    assert root.findall("devices/interface") == []


@pytest.mark.parametrize(("memory", "mib"), [(GIB, "1024"), (512 * MIB, "512"), (3 * GIB + MIB // 2, "3072")])
def test_memory_is_in_whole_mib(memory, mib):
    assert domain(memory=memory).findtext("memory") == mib


def test_set_resources_changes_only_vcpus_and_memory():
    before = ET.tostring(domain())
    after = ET.fromstring(set_resources(before.decode(), 8, 16 * GIB))
    assert after.findtext("vcpu") == "8"
    for tag in ("memory", "currentMemory"):
        assert (after.find(tag).attrib, after.findtext(tag)) == ({"unit": "MiB"}, "16384")
    unchanged = ET.fromstring(before)
    for path in ("name", "os/type", "devices/disk/source", "devices/interface/mac"):
        assert after.find(path).attrib == unchanged.find(path).attrib
    assert len(after.findall("devices/*")) == len(unchanged.findall("devices/*"))


def test_set_resources_adds_what_the_agent_left_out():
    after = ET.fromstring(set_resources("<domain type='kvm'><name>web-1</name>"
                                        "<memory unit='KiB'>1048576</memory></domain>", 2, 2 * GIB))
    assert (after.find("memory").attrib, after.findtext("memory")) == ({"unit": "MiB"}, "2048")
    assert after.findtext("currentMemory") == "2048"
    assert after.findtext("vcpu") == "2"
    assert after.findtext("name") == "web-1"

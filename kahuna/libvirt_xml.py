"""The libvirt domain of an instance, as the XML that Kaktus agents define.

Disks are RBD images of the instance's storage pool (virtio, writeback cache),
``vda`` the OS volume, ``vdb``... the others in order; the cloud-init seed is an IDE
CD-ROM ``hdd``; each NIC is bridged on its virtual network's host bridge (tagged
with the VLAN when there is one) with the adapter's MAC.

A BIOS domain (the default, and every domain made before API 0.58) runs the
machine type the node reports. A UEFI domain runs q35 with secure-boot OVMF
firmware chosen by libvirt (``<os firmware="efi">`` with a secure pflash loader:
libvirt picks the OVMF build and the per-domain NVRAM copy from the host's
firmware descriptors, whatever the distribution names its files) and SMM, which
secure boot needs; q35 has no IDE controller, so the seed is a SATA CD-ROM there
(:func:`seed_device`).
"""

from __future__ import annotations

import string
import xml.etree.ElementTree as ET
from dataclasses import dataclass

MIB = 1024**2


UEFI_MACHINE = "q35"


def seed_device(uefi: bool) -> str:
    """The cloud-init seed CD-ROM's device: IDE ``hdd`` on a BIOS (i440fx) machine, SATA ``sda`` on q35."""
    return "sda" if uefi else "hdd"


def uefi_machine(machine: str) -> str:
    """The node's machine type when it is a q35 one (``pc-q35-8.2``), else plain ``q35``."""
    return machine if UEFI_MACHINE in machine else UEFI_MACHINE


def disk_device(index: int) -> str:
    """``vda``, ``vdb``... ``vdz``, ``vdaa``..."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = string.ascii_lowercase[remainder] + letters
    return "vd" + letters


@dataclass(frozen=True)
class Disk:
    device: str
    pool: str
    volume: str


@dataclass(frozen=True)
class Nic:
    mac: str
    bridge: str
    vlan: int


@dataclass(frozen=True)
class Storage:
    """How the hypervisor reaches the Ceph cluster."""

    address: str
    port: int
    secret_uuid: str


def domain_xml(name: str, vcpus: int, memory: int, arch: str, machine: str, emulator: str, storage: Storage,
               disks: list[Disk], seed: Disk | None, nics: list[Nic], uefi: bool = False) -> str:
    domain = ET.Element("domain", type="kvm")
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "memory", unit="MiB").text = str(memory // MIB)
    ET.SubElement(domain, "currentMemory", unit="MiB").text = str(memory // MIB)
    ET.SubElement(domain, "vcpu", placement="static").text = str(vcpus)
    os = ET.SubElement(domain, "os", {"firmware": "efi"} if uefi else {})
    machine = uefi_machine(machine) if uefi else machine or "pc"
    ET.SubElement(os, "type", arch=arch or "x86_64", machine=machine).text = "hvm"
    if uefi:
        firmware = ET.SubElement(os, "firmware")
        ET.SubElement(firmware, "feature", enabled="yes", name="secure-boot")
        ET.SubElement(firmware, "feature", enabled="yes", name="enrolled-keys")
        ET.SubElement(os, "loader", readonly="yes", secure="yes", type="pflash")
    ET.SubElement(os, "boot", dev="hd")
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if uefi:
        ET.SubElement(features, "smm", state="on")
    ET.SubElement(domain, "cpu", mode="host-passthrough")
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "restart"
    ET.SubElement(domain, "on_crash").text = "restart"
    devices = ET.SubElement(domain, "devices")
    if emulator:
        ET.SubElement(devices, "emulator").text = emulator
    for disk in disks:
        _rbd(devices, "disk", disk, storage, bus="virtio")
    if seed is not None:
        _rbd(devices, "cdrom", seed, storage, bus="sata" if seed.device.startswith("sd") else "ide", read_only=True)
    for nic in nics:
        interface = ET.SubElement(devices, "interface", type="bridge")
        ET.SubElement(interface, "mac", address=nic.mac)
        ET.SubElement(interface, "source", bridge=nic.bridge)
        if nic.vlan:
            vlan = ET.SubElement(interface, "vlan")
            ET.SubElement(vlan, "tag", id=str(nic.vlan))
        ET.SubElement(interface, "model", type="virtio")
    ET.SubElement(devices, "graphics", type="spice", autoport="yes", listen="127.0.0.1")
    ET.SubElement(devices, "console", type="pty")
    ET.SubElement(devices, "memballoon", model="virtio")
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def _rbd(devices: ET.Element, device: str, disk: Disk, storage: Storage, bus: str, read_only: bool = False) -> None:
    element = ET.SubElement(devices, "disk", type="network", device=device)
    ET.SubElement(element, "driver", name="qemu", type="raw", cache="writeback")
    source = ET.SubElement(element, "source", protocol="rbd", name=f"{disk.pool}/{disk.volume}")
    ET.SubElement(source, "host", name=storage.address, port=str(storage.port))
    if storage.secret_uuid:
        auth = ET.SubElement(element, "auth", username="libvirt")
        ET.SubElement(auth, "secret", type="ceph", uuid=storage.secret_uuid)
    ET.SubElement(element, "target", dev=disk.device, bus=bus)
    if read_only:
        ET.SubElement(element, "readonly")


def set_resources(xml: str, vcpus: int, memory: int) -> str:
    """*xml* (a domain the agent returned) with new vCPUs and memory."""
    domain = ET.fromstring(xml)
    for tag in ("memory", "currentMemory"):
        element = domain.find(tag)
        if element is None:
            element = ET.SubElement(domain, tag)
        element.attrib = {"unit": "MiB"}
        element.text = str(memory // MIB)
    vcpu = domain.find("vcpu")
    if vcpu is None:
        vcpu = ET.SubElement(domain, "vcpu")
    vcpu.text = str(vcpus)
    return ET.tostring(domain, encoding="unicode")

"""Kaktus, the agent of a compute node: its libvirt domains, its Ceph RBD volumes, CephFS and NFS-Ganesha.

Each method is declared once, with its params and result TypedDicts just above it; records
that several methods share (a volume, an NFS export) are declared once too. Field names are
the Go agent's struct fields.
"""

from __future__ import annotations

from typing import TypedDict

from kahuna.rpc import KAKTUS, CapabilitiesResult, Method, NoParams, NoResult, capabilities_method

# Annotated: kahuna.rpc reads it while the two modules import each other.
Capabilities: Method[NoParams, CapabilitiesResult] = capabilities_method(KAKTUS)

_NO_DOMAIN = "no domain of that name"
_NO_VOLUME = "no volume of that name in the pool"
_VOLUME_EXISTS = "a volume of that name exists in the pool"
_NO_FS = "no CephFS file system of that name"


# -- the node ------------------------------------------------------------------------------------


class NodeCapabilitiesResult(TypedDict):
    Arch: str
    Vendor: str
    Model: str
    Sockets: int
    Cores: int
    Threads: int
    Memory: int
    GuestEmulator: str
    GuestMachineName: str


NodeCapabilities = Method(KAKTUS, "NodeCapabilities", NoParams, NodeCapabilitiesResult,
                          doc="The host's CPU, memory and emulator.")


# -- instances (libvirt domains) ---------------------------------------------------------------


class Instance(TypedDict):
    Name: str


class InstanceXml(Instance):
    XML: str


class GetInstanceParams(Instance):
    Migratable: bool


class GetInstanceResult(TypedDict):
    XML: str


class GetInstanceStateResult(TypedDict):
    State: str
    Reason: str


class InstanceIsRunningResult(TypedDict):
    Running: bool


class GetInstanceRemoteConnectionUrlResult(TypedDict):
    URL: str


class InstanceOperationParams(Instance):
    Action: int  # an rpc.InstanceAction


CreateInstance = Method(KAKTUS, "CreateInstance", InstanceXml, NoResult,
                        doc="Define a libvirt domain (does not start it).",
                        errors=("a domain of that name exists",))
GetInstance = Method(KAKTUS, "GetInstance", GetInstanceParams, GetInstanceResult, doc="A domain's XML.",
                     errors=(_NO_DOMAIN,))
UpdateInstance = Method(KAKTUS, "UpdateInstance", InstanceXml, NoResult, doc="Redefine a domain.",
                        errors=(_NO_DOMAIN,))
DeleteInstance = Method(KAKTUS, "DeleteInstance", Instance, NoResult, doc="Undefine a domain.",
                        errors=(_NO_DOMAIN,))
GetInstanceState = Method(KAKTUS, "GetInstanceState", Instance, GetInstanceStateResult, errors=(_NO_DOMAIN,))
InstanceIsRunning = Method(KAKTUS, "InstanceIsRunning", Instance, InstanceIsRunningResult)
GetInstanceRemoteConnectionUrl = Method(KAKTUS, "GetInstanceRemoteConnectionUrl", Instance,
                                        GetInstanceRemoteConnectionUrlResult, errors=(_NO_DOMAIN,))
InstanceOperation = Method(KAKTUS, "InstanceOperation", InstanceOperationParams, NoResult, timeout=120.0,
                           doc="Power operation; Action is an InstanceAction.",
                           errors=(_NO_DOMAIN, "an Action that is no InstanceAction"))


# -- storage: RBD volumes -----------------------------------------------------------------------


class StoragePool(TypedDict):
    Pool: str


class GetStoragePoolStatsResult(TypedDict):
    Allocated: int
    Available: int
    Capacity: int


class Volume(StoragePool):
    Volume: str


class SizedVolume(Volume):
    Size: int


class CreateTemplateVolumeParams(Volume):
    SourceURL: str


class CreateOsVolumeParams(SizedVolume):
    Template: str


class IsoVolume(SizedVolume):
    Content: bytes


class DeleteVolumeParams(Volume):
    WithSnapshots: bool


class VolumeSize(TypedDict):
    Size: int


GetStoragePoolStats = Method(KAKTUS, "GetStoragePoolStats", StoragePool, GetStoragePoolStatsResult)
CreateRawVolume = Method(KAKTUS, "CreateRawVolume", SizedVolume, NoResult, timeout=120.0, errors=(_VOLUME_EXISTS,))
CreateTemplateVolume = Method(KAKTUS, "CreateTemplateVolume", CreateTemplateVolumeParams, VolumeSize, timeout=3600.0,
                              doc="The agent downloads the image itself: minutes for a large one.",
                              errors=(_VOLUME_EXISTS,))
CreateOsVolume = Method(KAKTUS, "CreateOsVolume", CreateOsVolumeParams, NoResult, timeout=300.0,
                        doc="Clone a template (by name) into a new volume, then resize it.",
                        errors=(_VOLUME_EXISTS, "no template of that name in the pool"))
CreateIsoVolume = Method(KAKTUS, "CreateIsoVolume", IsoVolume, NoResult, timeout=120.0,
                         doc="Size must equal len(Content).",
                         errors=(_VOLUME_EXISTS, "Size differs from len(Content)"))
UpdateIsoVolume = Method(KAKTUS, "UpdateIsoVolume", IsoVolume, NoResult, timeout=120.0,
                         errors=(_NO_VOLUME, "Size differs from len(Content)"))
GetVolumeInfos = Method(KAKTUS, "GetVolumeInfos", Volume, VolumeSize, errors=(_NO_VOLUME,))
ResizeVolume = Method(KAKTUS, "ResizeVolume", SizedVolume, NoResult, timeout=120.0, errors=(_NO_VOLUME,))
DeleteVolume = Method(KAKTUS, "DeleteVolume", DeleteVolumeParams, NoResult, timeout=300.0, errors=(_NO_VOLUME,))


# -- storage: CephFS and NFS-Ganesha ------------------------------------------------------------


class ListFileSystemsResult(TypedDict):
    FS: list[str]


class FileSystem(TypedDict):
    FS: str


class ListFsSubVolumesResult(TypedDict):
    SubVolumes: list[str]


class SubVolume(FileSystem):
    SubVolume: str


class CreateFsSubVolumeResult(TypedDict):
    Path: str
    BytesUsed: int


class NfsBackends(TypedDict):
    """One NFS export (a CephFS subvolume) on every NFS-Ganesha backend of the storage."""

    ID: str
    Name: str
    FS: str
    Path: str
    Access: str
    Protocols: list[int]
    Clients: list[str]
    Backends: list[str]
    Port: int


ListFileSystems = Method(KAKTUS, "ListFileSystems", NoParams, ListFileSystemsResult)
ListFsSubVolumes = Method(KAKTUS, "ListFsSubVolumes", FileSystem, ListFsSubVolumesResult, errors=(_NO_FS,))
CreateFsSubVolume = Method(KAKTUS, "CreateFsSubVolume", SubVolume, CreateFsSubVolumeResult, errors=(_NO_FS,))
DeleteFsSubVolume = Method(KAKTUS, "DeleteFsSubVolume", SubVolume, NoResult, errors=(_NO_FS,))
CreateNfsBackends = Method(KAKTUS, "CreateNfsBackends", NfsBackends, NoResult)
UpdateNfsBackends = Method(KAKTUS, "UpdateNfsBackends", NfsBackends, NoResult)
DeleteNfsBackends = Method(KAKTUS, "DeleteNfsBackends", NfsBackends, NoResult)


# -- live migration: a PROPOSAL ------------------------------------------------------------------
# No released Kaktus agent serves these (0.64.2 and before: cold moves only). They are the wire Kahuna would use for
# a live kMotion, declared here so that agents can implement them as written; Kahuna calls them only on nodes whose
# agents advertise both in Capabilities (kahuna.services.kmotion), and the simulated agent serves them only when
# built with live_migration=True.

PROPOSAL = "proposal"


class PrepareMigrationResult(TypedDict):
    URI: str  # the libvirt URI the source migrates to, e.g. qemu+tls://kaktus-2.example/system


class MigrateInstanceParams(InstanceXml):
    DestinationURI: str
    Live: bool


PrepareMigration = Method(KAKTUS, "PrepareMigration", InstanceXml, PrepareMigrationResult, since=PROPOSAL,
                          doc="Proposal (no released agent): called on the target of a live kMotion with the domain "
                              "as the target will define it; checks it can run it and answers the URI to migrate to.",
                          errors=("a domain of that name exists", "the node cannot run the domain"))
MigrateInstance = Method(KAKTUS, "MigrateInstance", MigrateInstanceParams, NoResult, timeout=3600.0, since=PROPOSAL,
                         doc="Proposal (no released agent): called on the source; live-migrates the running domain "
                             "to DestinationURI with XML as its definition there (persistent on the target, undefined "
                             "on the source, disks shared), as virDomainMigrateToURI3 with VIR_MIGRATE_LIVE, "
                             "PERSIST_DEST and UNDEFINE_SOURCE.",
                         errors=(_NO_DOMAIN, "the domain is not running", "the migration failed (the domain stays on "
                                                                          "the source)"))

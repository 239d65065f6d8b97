"""The volume, instance, kompute and kylo tags. (Their project-scoped creations are in api.projects.)"""

from __future__ import annotations

import typing

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.compute import (
    InstanceRemoteAccessSchema,
    InstanceSchema,
    InstanceStateSchema,
    InstanceUpdateSchema,
    KomputeSchema,
    KomputeUpdateSchema,
    KyloSchema,
    KyloUpdateSchema,
    VolumeSchema,
    VolumeUpdateSchema,
)
from api.updates import update_merged

volume_blp = Blueprint("volume", __name__, description="Volumes: RBD images of a project.")
instance_blp = Blueprint("instance", __name__, description="Instances: virtual machines on a Kaktus.")
kompute_blp = Blueprint("kompute", __name__, description="Komputes: managed virtual machines.")
kylo_blp = Blueprint("kylo", __name__, description="Kylo: NFS shares of a project.")

POWER_ACTIONS = ("reboot", "reset", "suspend", "resume", "start", "stop", "shutdown")


@volume_blp.route("/volume")
class Volumes(MethodView):
    @volume_blp.operation("ListVolumes")
    @volume_blp.ids_response()
    def get(self):
        return services().volumes.list_ids()


@volume_blp.route("/volume/<volumeId>")
class VolumeById(MethodView):
    @volume_blp.operation("ReadVolume")
    @volume_blp.response(200, VolumeSchema)
    def get(self, volumeId):
        return services().volumes.get(volumeId)

    @volume_blp.operation("UpdateVolume")
    @volume_blp.arguments(VolumeUpdateSchema)
    @volume_blp.response(200, VolumeSchema)
    def put(self, changes, volumeId):
        volumes = services().volumes
        return update_merged(f"volume:{volumeId}", VolumeSchema, lambda: volumes.get(volumeId), changes,
                             lambda volume: volumes.update(volumeId, volume))

    @volume_blp.operation("DeleteVolume")
    @volume_blp.response(200)
    def delete(self, volumeId):
        services().volumes.delete(volumeId)
        return empty()


@instance_blp.route("/instance")
class Instances(MethodView):
    @instance_blp.operation("ListInstances")
    @instance_blp.ids_response()
    def get(self):
        return services().instances.list_ids()


@instance_blp.route("/instance/<instanceId>")
class InstanceById(MethodView):
    @instance_blp.operation("ReadInstance")
    @instance_blp.response(200, InstanceSchema)
    def get(self, instanceId):
        return services().instances.get(instanceId)

    @instance_blp.operation("UpdateInstance")
    @instance_blp.arguments(InstanceUpdateSchema)
    @instance_blp.response(200, InstanceSchema)
    def put(self, changes, instanceId):
        instances = services().instances
        return update_merged(f"instance:{instanceId}", InstanceSchema, lambda: instances.get(instanceId), changes,
                             lambda instance: instances.update(instanceId, instance))

    @instance_blp.operation("DeleteInstance")
    @instance_blp.response(200)
    def delete(self, instanceId):
        services().instances.delete(instanceId)
        return empty()


@instance_blp.route("/instance/<instanceId>/state")
class InstanceState(MethodView):
    @instance_blp.operation("ReadInstanceState")
    @instance_blp.response(200, InstanceStateSchema)
    def get(self, instanceId):
        return services().instances.state(instanceId)


@instance_blp.route("/instance/<instanceId>/connect")
class InstanceConnect(MethodView):
    @instance_blp.operation("ReadInstanceRemoteConnection")
    @instance_blp.response(200, InstanceRemoteAccessSchema)
    def get(self, instanceId):
        return services().instances.remote_connection(instanceId)


@kompute_blp.route("/kompute")
class Komputes(MethodView):
    @kompute_blp.operation("ListKomputes")
    @kompute_blp.ids_response()
    def get(self):
        return services().komputes.list_ids()


@kompute_blp.route("/kompute/<komputeId>")
class KomputeById(MethodView):
    @kompute_blp.operation("ReadKompute")
    @kompute_blp.response(200, KomputeSchema)
    def get(self, komputeId):
        komputes = services().komputes
        return komputes.details(komputes.get(komputeId))

    @kompute_blp.operation("UpdateKompute")
    @kompute_blp.arguments(KomputeUpdateSchema)
    @kompute_blp.response(200, KomputeSchema)
    def put(self, changes, komputeId):
        komputes = services().komputes
        return komputes.details(update_merged(f"kompute:{komputeId}", KomputeSchema,
                                              lambda: komputes.details(komputes.get(komputeId)), changes,
                                              lambda kompute: komputes.update(komputeId, kompute)))

    @kompute_blp.operation("DeleteKompute")
    @kompute_blp.response(200)
    def delete(self, komputeId):
        services().komputes.delete(komputeId)
        return empty()


@kompute_blp.route("/kompute/<komputeId>/state")
class KomputeState(MethodView):
    @kompute_blp.operation("ReadKomputeState")
    @kompute_blp.response(200, InstanceStateSchema)
    def get(self, komputeId):
        return services().instances.state(services().komputes.get(komputeId)["instance_id"])


def _power_routes(blp: Blueprint, kind: str, instance_of: typing.Callable[[str], str]) -> None:
    """``PATCH /<kind>/{id}/<action>`` for each power action, e.g. RebootKompute."""
    for action in POWER_ACTIONS:
        operation = f"{action.capitalize()}{kind.capitalize()}"

        def patch(self, _action=action, **ids):
            services().instances.power(instance_of(ids[f"{kind}Id"]), _action)
            return empty()

        patch.__name__ = "patch"
        view = type(operation, (MethodView,), {"patch": blp.operation(operation)(blp.response(200)(patch))})
        blp.route(f"/{kind}/<{kind}Id>/{action}")(view)


_power_routes(instance_blp, "instance", lambda instance_id: instance_id)
_power_routes(kompute_blp, "kompute", lambda kompute_id: services().komputes.get(kompute_id)["instance_id"])


@kylo_blp.route("/kylo")
class Kylos(MethodView):
    @kylo_blp.operation("ListKylos")
    @kylo_blp.ids_response()
    def get(self):
        return services().kylos.list_ids()


@kylo_blp.route("/kylo/<kyloId>")
class KyloById(MethodView):
    @kylo_blp.operation("ReadKylo")
    @kylo_blp.response(200, KyloSchema)
    def get(self, kyloId):
        kylos = services().kylos
        return kylos.details(kylos.get(kyloId))

    @kylo_blp.operation("UpdateKylo")
    @kylo_blp.arguments(KyloUpdateSchema)
    @kylo_blp.response(200, KyloSchema)
    def put(self, changes, kyloId):
        kylos = services().kylos
        return kylos.details(update_merged(f"kylo:{kyloId}", KyloSchema, lambda: kylos.details(kylos.get(kyloId)),
                                           changes, lambda kylo: kylos.update(kyloId, kylo)))

    @kylo_blp.operation("DeleteKylo")
    @kylo_blp.response(200)
    def delete(self, kyloId):
        services().kylos.delete(kyloId)
        return empty()

"""The agent tag: agent records and their API keys. Connections arrive on /ws (api.agent_socket)."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.agents import AgentSchema, AgentUpdateSchema
from api.schemas.tokens import ApiTokenSchema, ExpiryQuerySchema
from api.updates import update_merged

blp = Blueprint("agent", __name__, description="Kowabunga remote agents (Kaktus, Kiwi, Kontroller).")


@blp.route("/agent")
class Agents(MethodView):
    @blp.operation("ListAgents")
    @blp.ids_response()
    def get(self):
        return services().agents.list_ids()

    @blp.operation("CreateAgent")
    @blp.arguments(AgentSchema)
    @blp.response(201, AgentSchema)
    def post(self, agent):
        return services().agents.create(agent["name"], agent["description"], agent["type"])


@blp.route("/agent/<agentId>")
class AgentById(MethodView):
    @blp.operation("ReadAgent")
    @blp.response(200, AgentSchema)
    def get(self, agentId):
        return services().agents.get(agentId)

    @blp.operation("UpdateAgent")
    @blp.arguments(AgentUpdateSchema)
    @blp.response(200, AgentSchema)
    def put(self, changes, agentId):
        agents = services().agents
        return update_merged(f"agent:{agentId}", AgentSchema, lambda: agents.get(agentId), changes,
                             lambda agent: agents.update(agentId, agent["name"], agent["description"]))

    @blp.operation("DeleteAgent")
    @blp.response(200)
    def delete(self, agentId):
        services().agents.delete(agentId)
        return empty()


@blp.route("/agent/<agentId>/token")
class AgentApiToken(MethodView):
    @blp.operation("SetAgentApiToken")
    @blp.arguments(ExpiryQuerySchema, location="query")
    @blp.response(200, ApiTokenSchema)
    def patch(self, expiry, agentId):
        return services().agents.rotate_key(agentId, expiry["expire"], expiry["expiration_date"])

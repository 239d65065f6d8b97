"""A Kahuna under test, driven through the official SDK ``kowabunga==0.53.2``."""

from __future__ import annotations

import json
import secrets
import time
import typing
import urllib.parse
from dataclasses import dataclass

import gevent
import kowabunga
import urllib3

from kahuna.config import Config
from kahuna.daemon import Kahuna
from tests.mailserver import MailServer, fact_in, link_in
from tests.simulator import SimulatedAgent

MASTER_KEY = "m" * 8 + secrets.token_hex(16)
#: For :meth:`Deployment.api_request`: send no body at all (``None`` sends JSON null).
NO_BODY = object()
ADMIN_EMAIL = "ops@example.com"


@dataclass
class Account:
    id: str
    email: str
    password: str
    role: str


class Deployment:
    def __init__(self, kahuna: Kahuna, mail: MailServer, db_name: str, owns_database: bool = True):
        self.kahuna = kahuna
        self.mail = mail
        self.db_name = db_name
        self.owns_database = owns_database
        host, port = kahuna.server.address[:2]
        self.base_url = f"http://{host}:{port}"
        self.http = urllib3.PoolManager()

    @classmethod
    def start(cls, db_uri: str, db_name: str, mail: MailServer, keep_database: bool = False,
              **overrides) -> Deployment:
        """A Kahuna on loopback; *keep_database* for a second node of a pair (the first drops it)."""
        config = Config().with_overrides({
            "global.db.uri": db_uri,
            "global.db.name": db_name,
            "global.apiKey": MASTER_KEY,
            "global.publicUrl": "http://127.0.0.1:1",  # replaced below once the port is known
            "global.smtp.host": "127.0.0.1",
            "global.smtp.port": mail.port,
            "global.smtp.security": "none",
            "global.adminEmail": ADMIN_EMAIL,
            "global.bootstrap.pubkey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKahunaTestKey test",
            # Real bcrypt, at the cheapest cost: the suite hashes hundreds of passwords.
            "global.accounts.bcryptCost": 4,
            # Each test's Kahuna stops at once: the suite's clients keep idle keep-alive connections.
            "global.http.shutdownGraceSeconds": 0.1,
            **overrides,
        })
        if not keep_database:
            mail.clear()
        kahuna = Kahuna.start(config)
        server = kahuna.listen("127.0.0.1", 0)
        public_url = f"http://127.0.0.1:{server.address[1]}"
        kahuna.services.users.public_url = public_url
        kahuna.services.instances.public_url = public_url
        return cls(kahuna, mail, db_name, owns_database=not keep_database)

    def stop(self) -> None:
        if self.owns_database:
            self.kahuna.db.client.drop_database(self.db_name)
        self.kahuna.stop()

    # -- SDK clients ---------------------------------------------------------------

    def client(self, api_key: str | None = None, token: str | None = None) -> kowabunga.ApiClient:
        configuration = kowabunga.Configuration(host=f"{self.base_url}/api/v1", access_token=token)
        if api_key:
            configuration.api_key = {"ApiKeyAuth": api_key}
        return kowabunga.ApiClient(configuration)

    @property
    def admin(self) -> kowabunga.ApiClient:
        """A client holding the master API key (superAdmin)."""
        return self.client(api_key=MASTER_KEY)

    def anonymous(self) -> kowabunga.ApiClient:
        return self.client()

    def api_request(self, method: str, path: str, body: typing.Any = NO_BODY, *, token: str | None = None,
                    api_key: str | None = MASTER_KEY,
                    headers: dict[str, str] | None = None) -> tuple[int, typing.Any]:
        """A raw JSON request to ``/api/v1<path>``, as a client without an SDK in this process sends it (API 0.58's
        routes and bodies): (status, decoded body or None). As superAdmin by default, as a user with *token*;
        *headers* replaces the credentials. Never retried: a test sees each request once."""
        if headers is None:
            headers = {"Authorization": f"Bearer {token}"} if token else {"X-API-Key": api_key} if api_key else {}
        response = self.http.request(method, f"{self.base_url}/api/v1{path}", headers=headers, retries=False,
                                     **({} if body is NO_BODY else {"json": body}))
        return response.status, json.loads(response.data) if response.data else None

    # -- accounts ------------------------------------------------------------------

    def follow(self, link: str, method: str = "POST") -> urllib3.BaseHTTPResponse:
        """Follow an e-mailed link the way its page's button does."""
        parsed = urllib.parse.urlsplit(link)
        url = f"{self.base_url}{parsed.path}"
        fields = dict(urllib.parse.parse_qsl(parsed.query))
        if method == "GET":
            return self.http.request("GET", url, fields=fields)
        return self.http.request("POST", url, body=urllib.parse.urlencode(fields),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})

    def create_account(self, name: str, role: str = "user") -> Account:
        """Create a user as superAdmin, confirm it by its e-mailed link, read its e-mailed password."""
        email = f"{name}@example.com"
        user = kowabunga.UserApi(self.admin).create_user(kowabunga.User(name=name, email=email, role=role))
        welcome = self.mail.wait_for(email, "Welcome to Kowabunga")
        assert self.follow(link_in(welcome)).status == 200
        password = fact_in(self.mail.wait_for(email, "account is ready"), "Password")
        return Account(id=user.id, email=email, password=password, role=role)

    # -- agents --------------------------------------------------------------------

    def create_agent(self, name: str, agent_type: str = "Kaktus") -> tuple[str, str]:
        """An agent record and its API key, as an operator gets them (the key by e-mail)."""
        agents = kowabunga.AgentApi(self.admin)
        agent = agents.create_agent(kowabunga.Agent(name=name, type=agent_type))
        count = self.mail.count(ADMIN_EMAIL, "agent API key") + 1
        agents.set_agent_api_token(agent.id)
        letter = self.mail.wait_for(ADMIN_EMAIL, "agent API key", count=count)
        assert fact_in(letter, "Agent ID") == agent.id
        return agent.id, fact_in(letter, "API key")

    def simulated_agent(self, name: str, agent_type: str = "Kaktus", **kwargs) -> SimulatedAgent:
        """A connected simulated agent, once Kahuna knows its capabilities."""
        agent_id, key = self.create_agent(name, agent_type)
        agent = SimulatedAgent(self.base_url.replace("http://", "ws://"), agent_type, agent_id, key, name=name,
                               **kwargs).connect()
        self.wait_until(lambda: (info := self.kahuna.plane.info(agent_id)) is not None and info.methods)
        return agent

    @staticmethod
    def wait_until(condition, timeout: float = 10.0, what: str = "condition") -> None:
        """Wait (boundedly) for something another greenlet or process does."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {timeout}s")
            gevent.sleep(0.02)

    def login(self, account: Account) -> kowabunga.ApiClient:
        credentials = kowabunga.UserApi(self.anonymous()).login(
            kowabunga.UserCredentials(email=account.email, password=account.password))
        return self.client(token=credentials.jwt)


def expect_error(status: int, call, *args, **kwargs) -> dict:
    """Call an SDK method that must fail with *status*; return the documented error body."""
    try:
        call(*args, **kwargs)
    except kowabunga.ApiException as exc:
        assert exc.status == status, f"expected {status}, got {exc.status}: {exc.body}"
        body = json.loads(exc.body)
        assert body["status"] == status and body["error"] and body["reason"], body
        assert set(body) == {"status", "error", "reason"}, body
        return body
    raise AssertionError(f"expected an error {status}, the call succeeded")

"""User accounts: 2-step creation, 2-step password recovery, passwords, roles.

Creation: a superAdmin creates the account, disabled; the user follows the
e-mailed link, which enables it and e-mails a server-generated password.
Recovery: a request (by e-mail address, or for a user id) e-mails a link; the
link, followed, e-mails a new server-generated password and ends every session.
A change of address (``PUT /user/{id}`` with another ``email``, by the user or by a
superAdmin alike) e-mails a link to the new address and a notice to the current one;
the account keeps its current address, for logins and resets, until the link is
followed.
Links are single-use and expire. Nothing here tells whether an address exists.
"""

from __future__ import annotations

import datetime
import logging
import typing
import urllib.parse

import email_validator
import gevent

from kahuna import credentials
from kahuna.access import Identity, Role
from kahuna.errors import Conflict, Forbidden, NotFound, Unprocessable
from kahuna.mail import Letter, Mailer
from kahuna.services._common import Owners
from kahuna.services.sessions import SessionService
from kahuna.services.throttling import Guard
from kahuna.services.tokens import USER, TokenService
from kahuna.storage import Database, models, utcnow

log = logging.getLogger(__name__)

#: What an e-mailed link is for: the field of the user document that holds it (models.User).
LinkPurpose = typing.Literal["registration", "password_reset", "email_change"]
REGISTRATION: typing.Final = "registration"
PASSWORD_RESET: typing.Final = "password_reset"
EMAIL_CHANGE: typing.Final = "email_change"


def normalize_email(address: str) -> str:
    try:
        return email_validator.validate_email(address, check_deliverability=False).normalized.lower()
    except email_validator.EmailNotValidError as exc:
        raise Unprocessable(f"invalid e-mail address {address!r}: {exc}") from None


#: Runs ``function(*args)`` later, without the caller waiting for it.
Background = typing.Callable[..., None]


def in_background(function: typing.Callable[..., None], *args: typing.Any) -> None:
    """In a greenlet of its own: the request that asked is answered meanwhile."""
    gevent.spawn(function, *args)


class InvalidLink(Exception):
    """An e-mailed link that is unknown, used already, or expired."""


class UserService:
    def __init__(self, db: Database, mailer: Mailer, hasher: credentials.PasswordHasher, sessions: SessionService,
                 tokens: TokenService, public_url: str, registration_lifetime: datetime.timedelta,
                 reset_lifetime: datetime.timedelta, reset_guard: Guard, serializer: Owners,
                 background: Background = in_background):
        self.db = db
        # Where a public reset request's work runs, after its answer (tests run it inline).
        self.background = background
        # A user's links, password and role are decided in the user's owner (``user:<id>``); whether a
        # superAdmin remains, in the one owner of all superAdmins (``superadmins``).
        self.serializer = serializer
        self.reset_guard = reset_guard
        # Mails to an address someone typed: as many as reset mails, per address and per account asking.
        self.change_guard = Guard(reset_guard.limiter, "e-mail change", reset_guard.per_account,
                                  reset_guard.per_source, reset_guard.window)
        self.mailer = mailer
        self.hasher = hasher
        self.sessions = sessions
        self.tokens = tokens
        self.public_url = public_url.rstrip("/")
        # A new address is confirmed like a new account's: within the registration link's lifetime.
        self.lifetimes = {REGISTRATION: registration_lifetime, PASSWORD_RESET: reset_lifetime,
                          EMAIL_CHANGE: registration_lifetime}

    # -- reads -------------------------------------------------------------------

    def list_ids(self) -> list[str]:
        return self.db.users.ids()

    def get(self, user_id: str) -> models.User:
        return self.db.users.get(user_id)

    # -- creation and confirmation ----------------------------------------------

    def create(self, name: str, email: str, role: Role, description: str = "",
               notifications: bool = False) -> models.User:
        user = self.db.users.insert(
            {"name": name, "description": description, "email": normalize_email(email), "role": str(role),
             "notifications": notifications, "enabled": False, "password_hash": None},
            conflict="a user with the same name or e-mail address already exists",
        )
        try:
            self._welcome(user)
        except BaseException:
            # Without the e-mail the account could never be confirmed: do not keep it.
            self.db.users.delete(user["_id"])
            raise
        return self.db.users.get(user["_id"])

    def _welcome(self, user: models.User) -> None:
        """The registration link, to the account's address."""
        link = self._issue_link(user, REGISTRATION, "/confirm")
        self.mailer.send(Letter(
            to=user["email"],
            subject="Welcome to Kowabunga !",
            intro="Welcome to Kowabunga ! We're very excited to have you on board. "
                  "Confirm your account and your password will be e-mailed to you.",
            facts=(("Name", user["name"]), ("Role", str(user["role"])),
                   ("Email Notifications", "Enabled" if user.get("notifications") else "Disabled")),
            action=("Confirm your account", link),
        ))

    def ensure_bootstrap_admin(self, email: str, name: str = "admin") -> tuple[models.User, str] | None:
        """The first superAdmin, enabled at once, when there is no user at all; returns it with its password."""
        if self.db.users.count() > 0:
            return None
        password = credentials.generate_password()
        try:
            user = self.db.users.insert({
                "name": name, "description": "bootstrap administrator", "email": normalize_email(email),
                "role": str(Role.SUPER_ADMIN), "notifications": False, "enabled": True,
                "password_hash": self.hasher.hash(password),
            })
        except Conflict:
            return None  # another node of the pair was first
        return user, password

    def confirm_registration(self, user_id: str, token: str) -> None:
        self._follow_link(user_id, token, REGISTRATION, "Your Kowabunga account is ready !",
                          "Your account is confirmed. Here's your password:", enable=True)

    # -- passwords -----------------------------------------------------------------

    def set_password(self, user_id: str, password: str) -> None:
        credentials.check_password_strength(password)
        password_hash = self.hasher.hash(password)
        self.serializer.run(f"user:{user_id}", self.db.users.update, user_id, {"password_hash": password_hash})
        self.sessions.revoke_all(user_id)

    def request_password_reset(self, email: str, source: str) -> None:
        """Public step 1: e-mail a reset link if the address is known; silent either way (429 past the limits).

        Past the throttle, the look-up, the link and the mail are left to the background: a known address would
        otherwise answer later (a write and an SMTP exchange) or otherwise (422 when the relay is down) than an
        unknown one. A failure there is logged, never answered."""
        self.reset_guard.reserve(email, source)
        self.background(self._mail_reset_link, email)

    def _mail_reset_link(self, email: str) -> None:
        try:
            address = normalize_email(email)
        except Unprocessable:
            return
        try:
            user = self.db.users.find_one({"email": address})
            if user is not None:
                self.request_password_reset_for(str(user["_id"]))
        except Unprocessable as exc:  # the mail relay is down...
            log.error("password reset requested for %s: no link sent: %s", address, exc.reason)
        except Exception:
            log.exception("password reset requested for %s: no link sent", address)

    def request_password_reset_for(self, user_id: str) -> None:
        user = self.db.users.get(user_id)
        link = self._issue_link(user, PASSWORD_RESET, "/confirmForgotPassword")
        self.mailer.send(Letter(
            to=user["email"],
            subject="Forgot about your Kowabunga password ?",
            intro="You have received this email because a password reset request for your Kowabunga account "
                  "was received. If you did not ask for it, ignore this e-mail: your password stays as it is.",
            action=("Confirm password renewal", link),
        ))

    def confirm_password_reset(self, user_id: str, token: str) -> None:
        self._follow_link(user_id, token, PASSWORD_RESET, "Your Kowabunga password has been reset !",
                          "Here's your new password:")
        self.sessions.revoke_all(user_id)

    def _follow_link(self, user_id: str, token: str, purpose: LinkPurpose, subject: str, intro: str,
                     enable: bool = False) -> None:
        """Consume the link (in the user's owner: one follower wins), mail a new password, then store it.

        If the mail cannot be sent the link is put back, so it can be followed again once the relay works.
        """
        user, link = self.serializer.run(f"user:{user_id}", self._consume_link, user_id, token, purpose)
        password = credentials.generate_password()
        try:
            self.mailer.send(Letter(to=user["email"], subject=subject, intro=intro, facts=(("Password", password),),
                                    outro="This email is a one-timer: keep the password in a safe place."))
        except BaseException:
            self.serializer.run(f"user:{user_id}", self._restore_link, user_id, purpose, link)
            raise
        fields: dict[str, typing.Any] = {"password_hash": self.hasher.hash(password)}
        if enable:
            fields["enabled"] = True
        self.serializer.run(f"user:{user_id}", self.db.users.update, user_id, fields)

    def _issue_link(self, user: models.User, purpose: LinkPurpose, path: str, address: str | None = None) -> str:
        """A link for *purpose* (to *address*, a new e-mail address being confirmed), stored as a digest."""
        token = credentials.generate_link_token()
        link: models.Link = {"digest": credentials.digest(token), "expires_at": utcnow() + self.lifetimes[purpose]}
        if address is not None:
            link["address"] = address
        self.serializer.run(f"user:{user['_id']}", self.db.users.update, user["_id"], {purpose: link})
        query = urllib.parse.urlencode({"user": str(user["_id"]), "token": token})
        return f"{self.public_url}{path}?{query}"

    def _consume_link(self, user_id: str, token: str, purpose: LinkPurpose) -> tuple[models.User, models.Link]:
        """Use up a link (in the user's owner): it matches, it has not expired, and no one used it first."""
        invalid = InvalidLink("this link is invalid, was used already, or has expired")
        if not token:
            raise InvalidLink("missing token")
        try:
            user = self.db.users.get(user_id)
        except NotFound:
            raise invalid from None
        link = user.get(purpose)
        if link is None or not (credentials.same_secret(link["digest"], credentials.digest(token))
                                and link["expires_at"] >= utcnow()):
            raise invalid
        return self.db.users.update(user_id, extra={"$unset": {purpose: ""}}), link

    def _restore_link(self, user_id: str, purpose: LinkPurpose, link: models.Link) -> None:
        if purpose not in self.db.users.get(user_id):  # unless a newer link was issued meanwhile
            self.db.users.update(user_id, {purpose: link})

    # -- update and deletion -----------------------------------------------------------

    def update(self, identity: Identity, user_id: str, name: str, email: str, role: Role,
               description: str = "", notifications: bool = False) -> models.User:
        """Everything but the address changes at once; another address is only asked for (see
        :meth:`request_email_change`), and the account answered still shows its current one."""
        address = normalize_email(email)
        if address != self.db.users.get(user_id)["email"]:
            # Counted before anything changes: past the limit, the whole update is refused (429).
            self.change_guard.reserve(address, f"user:{user_id}")
        fields = {"name": name, "description": description, "role": str(role), "notifications": notifications}

        def change() -> models.User:
            user = self.db.users.get(user_id)
            if role != user["role"] and not identity.is_super_admin:
                raise Forbidden("only a superAdmin can change a user's role")
            if role != Role.SUPER_ADMIN and user["role"] == Role.SUPER_ADMIN:
                self._keep_one_super_admin(user_id)
            return self.db.users.update(user_id, fields,
                                        conflict="a user with the same name or e-mail address already exists")

        user = self.serializer.run_all(("superadmins", f"user:{user_id}"), change)
        if address != user["email"]:
            self.request_email_change(user, address)
        return user

    # -- change of address ----------------------------------------------------------------

    def request_email_change(self, user: models.User, address: str) -> None:
        """E-mail a link to *address* and a notice to the current address; the account keeps the current one
        until the link is followed. An address that another account has gets a notice instead of a link, and
        the caller is told nothing different (no account enumeration)."""
        current = user["email"]
        hours = int(self.lifetimes[EMAIL_CHANGE].total_seconds() // 3600)
        taken = self.db.users.find_one({"email": address}) is not None
        try:
            if taken:
                self.mailer.send(Letter(
                    to=address, subject="Your address and Kowabunga",
                    intro="Someone asked to use this address for a Kowabunga account, but an account uses it "
                          "already: nothing was changed. If you did not expect this, you can ignore this e-mail."))
            else:
                link = self._issue_link(user, EMAIL_CHANGE, "/confirmEmail", address=address)
                self.mailer.send(Letter(
                    to=address, subject="Confirm your new Kowabunga e-mail address",
                    intro=f"A change of the e-mail address of the Kowabunga account {user['name']} to this address "
                          f"was asked for. Confirm it within {hours} hours and this address becomes the account's.",
                    facts=(("Name", user["name"]), ("New address", address)),
                    action=("Confirm this address", link)))
            self.mailer.send(Letter(
                to=current, subject="Your Kowabunga e-mail address is about to change",
                intro=f"A change of the e-mail address of your Kowabunga account to {address} was asked for. It "
                      f"takes effect only once confirmed from {address}, within {hours} hours; until then, this "
                      f"address stays your account's. If you did not ask for it, change your password and "
                      f"tell your administrator.",
                facts=(("Name", user["name"]), ("New address", address))))
        except BaseException:
            # Unannounced, the change must not be confirmable either.
            self.serializer.run(f"user:{user['_id']}", self._drop_link, str(user["_id"]), EMAIL_CHANGE, address)
            raise

    def confirm_email_change(self, user_id: str, token: str) -> None:
        """The link to the new address, followed: in the user's owner, use it up and take the address (the
        unique index refuses one that another account took meanwhile); then tell both addresses."""
        def apply() -> tuple[str, models.User]:
            user, link = self._consume_link(user_id, token, EMAIL_CHANGE)
            try:
                changed = self.db.users.update(user_id, {"email": link["address"]})
            except Conflict:
                raise InvalidLink("this address is now used by another account") from None
            return user["email"], changed

        previous, user = self.serializer.run(f"user:{user_id}", apply)
        for to, intro in ((user["email"], "This address is now the e-mail address of your Kowabunga account."),
                          (previous, f"The e-mail address of your Kowabunga account is now {user['email']}: "
                                     f"this address no longer receives its e-mails. If you did not ask for it, "
                                     f"tell your administrator.")):
            try:
                self.mailer.send(Letter(to=to, subject="Your Kowabunga e-mail address has changed", intro=intro,
                                        facts=(("Name", user["name"]),)))
            except Exception as exc:  # noqa: BLE001 - the change is made; the notices are a courtesy
                log.warning("notice of the address change of user %s not sent: %s", user_id, exc)
        if not user.get("enabled") and user.get("password_hash") is None:
            # Not confirmed yet: its welcome went to the old address; the new one gets it now.
            try:
                self._welcome(user)
            except Exception as exc:  # noqa: BLE001 - a superAdmin can re-create the account
                log.warning("welcome of user %s not sent to its new address: %s", user_id, exc)

    def _drop_link(self, user_id: str, purpose: LinkPurpose, address: str) -> None:
        link = self.db.users.get(user_id).get(purpose)
        if link is not None and link.get("address") == address:
            self.db.users.update(user_id, extra={"$unset": {purpose: ""}})

    def delete(self, user_id: str) -> None:
        def remove() -> None:
            user = self.db.users.get(user_id)
            if user["role"] == Role.SUPER_ADMIN:
                self._keep_one_super_admin(user_id)
            self.db.users.delete(user_id)

        self.serializer.run_all(("superadmins", f"user:{user_id}"), remove)
        self.db.teams.collection.update_many({"user_ids": user_id}, {"$pull": {"user_ids": user_id}})
        self.tokens.delete_for(USER, user_id)
        self.sessions.revoke_all(user_id)

    def _keep_one_super_admin(self, user_id: str) -> None:
        others = self.db.users.count({"role": str(Role.SUPER_ADMIN), "enabled": True,
                                      "_id": {"$ne": self.db.users.get(user_id)["_id"]}})
        if others == 0:
            raise Conflict("this is the last superAdmin: promote another user first")

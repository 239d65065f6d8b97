"""Account e-mails: what is said (:class:`Letters`) and how it is sent (:class:`Mailer`)."""

from __future__ import annotations

import html
import logging
import smtplib
import ssl
import typing
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from kahuna.config import SmtpConfig
from kahuna.errors import Unprocessable
from kahuna.watchdog import off_hub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Letter:
    to: str
    subject: str
    intro: str
    # (label, value) rows shown as a table.
    facts: tuple[tuple[str, str], ...] = ()
    # A call to action: (button text, URL).
    action: tuple[str, str] | None = None
    outro: str = "Need help, or have questions? Just reply to this email, we'd love to help."


class Mailer(typing.Protocol):
    def send(self, letter: Letter) -> None:
        """Deliver *letter* or raise :class:`kahuna.errors.Unprocessable`."""


class SmtpMailer:
    """Sends multipart (text + HTML) mail through the configured SMTP relay."""

    def __init__(self, config: SmtpConfig):
        self.config = config
        self._context: ssl.SSLContext | None = None

    def _tls_context(self) -> ssl.SSLContext:
        """Made once, on the thread pool: loading the CA store costs ~15 ms of CPU, which would hold the hub."""
        if self._context is None:
            context = off_hub(ssl.create_default_context)
            if not self.config.verifyTls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._context = context
        return self._context

    def send(self, letter: Letter) -> None:
        message = render(letter, self.config.sender)
        cfg = self.config
        context = self._tls_context() if cfg.security != "none" else None
        try:
            if cfg.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeoutSeconds, context=context)
            else:
                client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeoutSeconds)
            with client:
                if cfg.security == "starttls":
                    client.ehlo()
                    if client.has_extn("starttls"):
                        client.starttls(context=context)
                        client.ehlo()
                if cfg.username:
                    client.login(cfg.username, cfg.password)
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.error("cannot send %r to %s: %s", letter.subject, letter.to, exc)
            raise Unprocessable(f"cannot send e-mail to {letter.to}: the mail relay is unavailable") from exc


def render(letter: Letter, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = letter.to
    message["Subject"] = letter.subject
    message["Message-ID"] = make_msgid(domain="kowabunga")
    text = [f"Hi,\n\n{letter.intro}\n"]
    text += [f"  {label}: {value}" for label, value in letter.facts]
    if letter.action:
        text.append(f"\n{letter.action[0]}:\n{letter.action[1]}\n")
    text.append(f"\n{letter.outro}\n\nYours truly,\nKowabunga\n")
    message.set_content("\n".join(text))
    rows = "".join(f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
                   for label, value in letter.facts)
    button = ""
    if letter.action:
        label, url = letter.action
        button = (f"<p><a href='{html.escape(url, quote=True)}' style='background:#112362;color:#fff;"
                  f"padding:10px 16px;text-decoration:none;border-radius:4px'>{html.escape(label)}</a></p>")
    message.add_alternative(
        f"<html><body style='font-family:sans-serif'><p>Hi,</p><p>{html.escape(letter.intro)}</p>"
        f"<table>{rows}</table>{button}<p>{html.escape(letter.outro)}</p><p>Yours truly,<br>Kowabunga</p>"
        f"<p style='color:#888;font-size:small'>Copyright (c) The Kowabunga Project. All rights reserved.</p>"
        f"</body></html>",
        subtype="html",
    )
    return message


def sender_address(name: str, address: str) -> str:
    return formataddr((name, address))

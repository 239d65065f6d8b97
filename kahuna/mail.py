"""Account e-mails: what is said (:class:`Letters`) and how it is sent (:class:`Mailer`)."""

from __future__ import annotations

import html
import logging
import mailbox
import smtplib
import ssl
import typing
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path

from kahuna.config import Config, ConfigError, SmtpConfig, maildir_of
from kahuna.errors import Unprocessable
from kahuna.watchdog import off_hub

log = logging.getLogger(__name__)

#: The daemon's NOTICE level (kahuna.daemon): where mail went is shown even at logLevel NOTICE.
NOTICE = 25


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


class MaildirMailer:
    """No SMTP server (``global.smtp.host`` empty, the embedded default): each message is written as a file
    of a Maildir (``<dir>/new/<unique name>``, what mail readers such as ``mutt -f`` open), and its path is
    logged, so that e-mailed links, passwords and keys can be read with no mail server."""

    def __init__(self, directory: str | Path, sender: str):
        self.directory = Path(directory)
        self.sender = sender
        try:
            # Messages hold passwords and API keys: the folders are the owner's only.
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            for folder in ("tmp", "new", "cur"):
                (self.directory / folder).mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the maildir {self.directory} (global.smtp.maildir): "
                              f"{exc.strerror}") from exc
        self._box = mailbox.Maildir(self.directory, create=False)
        log.log(NOTICE, "no SMTP server (global.smtp.host is empty): e-mails are written to the maildir %s, "
                        "not sent", self.directory)

    def _write(self, message: EmailMessage) -> str:
        try:
            return self._box.add(message)
        except mailbox.ExternalClashError:  # two messages named alike in the same microsecond: once more
            return self._box.add(message)

    def send(self, letter: Letter) -> None:
        message = render(letter, self.sender)
        try:
            # A few kilobytes, but on a disk that may stall: the hub goes on meanwhile.
            key = off_hub(self._write, message)
        except (OSError, mailbox.Error) as exc:
            log.error("cannot write %r to %s into the maildir %s: %s", letter.subject, letter.to, self.directory, exc)
            raise Unprocessable(f"cannot send e-mail to {letter.to}: the maildir is not writable") from exc
        log.log(NOTICE, "e-mail %r to %s written to %s", letter.subject, letter.to, self.directory / "new" / key)


def mailer_for(config: Config) -> Mailer:
    """The SMTP relay of the configuration, or without one (global.smtp.host empty) its maildir."""
    smtp = config.global_.smtp
    if smtp.host:
        return SmtpMailer(smtp)
    directory = maildir_of(config)
    if not directory:
        raise ConfigError("global.smtp.host is empty and there is no maildir to write mail to "
                          "(global.smtp.maildir, or the embedded database's <dataDir>/mail)")
    return MaildirMailer(directory, smtp.sender)


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

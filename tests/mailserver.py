"""A real SMTP server for the tests: aiosmtpd in its own process, delivering into a Maildir."""

from __future__ import annotations

import email.message
import mailbox
import re
import socket
import subprocess
import sys
import time
from pathlib import Path


class MailServer:
    def __init__(self, directory: Path, port: int):
        # Maildir creates its tmp/new/cur folders only in a folder that does not exist yet.
        self.directory = directory / "Maildir"
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self) -> MailServer:
        mailbox.Maildir(self.directory, create=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             "-c", "aiosmtpd.handlers.Mailbox", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the test SMTP server did not start")

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)

    def clear(self) -> None:
        mailbox.Maildir(self.directory, create=False).clear()

    def messages(self, to: str) -> list[email.message.Message]:
        box = mailbox.Maildir(self.directory, create=False)
        found = [box.get_message(key) for key in box.keys()]
        return sorted((m for m in found if to.lower() in (m["To"] or "").lower()), key=lambda m: m.get_date() or 0)

    def wait_for(self, to: str, subject: str, count: int = 1, timeout: float = 10.0) -> email.message.Message:
        """The *count*-th message to *to* whose subject contains *subject* (mail is delivered asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [m for m in self.messages(to) if subject in (m["Subject"] or "")]
            if len(matching) >= count:
                return matching[count - 1]
            if time.monotonic() > deadline:
                subjects = [m["Subject"] for m in self.messages(to)]
                raise AssertionError(f"no message {subject!r} #{count} for {to}; got {subjects}")
            time.sleep(0.05)

    def count(self, to: str, subject: str) -> int:
        return sum(1 for m in self.messages(to) if subject in (m["Subject"] or ""))


def text_of(message: email.message.Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    raise AssertionError("message has no text part")


def link_in(message: email.message.Message) -> str:
    match = re.search(r"https?://\S+\?user=\w+&token=[\w-]+", text_of(message))
    assert match, "message holds no link"
    return match.group(0)


def fact_in(message: email.message.Message, label: str) -> str:
    match = re.search(rf"^  {re.escape(label)}: (\S+)$", text_of(message), re.MULTILINE)
    assert match, f"message holds no {label}"
    return match.group(1)

"""Real mail servers for the tests: an aiosmtpd sink, and Debian's dovecot-imapd with a throw-away
configuration and user on 127.0.0.1 (installed with apt-get when missing)."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

from tests.browser_support import free_port, wait_for_port  # noqa: E402,F401  (shared port helpers)

DOVECOT = "/usr/sbin/dovecot"


# --- SMTP ------------------------------------------------------------------------------------------------

@dataclass
class SinkHandler:
    """Collects what arrives; ``refuse_rcpt`` / ``fail_data`` make the server answer with an error."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse_rcpt: str | None = None  # e.g. "550 5.1.1 No such user"
    fail_data: list[str] = field(default_factory=list)  # responses for the next DATA commands

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.fail_data:
            return self.fail_data.pop(0)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or
                              envelope.content))
        return "250 Message accepted"

    def messages(self):
        return [message_from_bytes(raw, policy=policy.default) for _, _, raw in self.received]


class SmtpSink:
    def __init__(self, *, username: str | None = None, password: str | None = None):
        from aiosmtpd.controller import Controller

        self.handler = SinkHandler()
        self.port = free_port()
        kwargs = {}
        if username:
            def authenticator(server, session, envelope, mechanism, auth_data):
                from aiosmtpd.smtp import AuthResult

                ok = auth_data.login.decode() == username and auth_data.password.decode() == password
                return AuthResult(success=ok, handled=False)

            kwargs = {"authenticator": authenticator, "auth_require_tls": False, "auth_required": True}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


# --- IMAP (dovecot) ----------------------------------------------------------------------------------------

def ensure_dovecot() -> None:
    if Path(DOVECOT).exists():
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=True, capture_output=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "dovecot-imapd"], check=True, capture_output=True, env=env)


@dataclass
class Dovecot:
    root: Path
    port: int
    username: str
    password: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self):
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(self.username, self.password)
        return client

    def deliver(self, raw: bytes, folder: str = "INBOX", flags: tuple = ()) -> None:
        client = self.client()
        try:
            client.append(folder, raw, flags=flags)
        finally:
            client.logout()


def start_dovecot(username: str = "support@desk.test", password: str = "imap-test-password") -> Dovecot:
    ensure_dovecot()
    root = Path(tempfile.mkdtemp(prefix="desk-dovecot-"))
    root.chmod(0o755)
    owner = pwd.getpwnam("dovecot")
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir()
    for sub in ("mail", "home"):
        os.chown(root / sub, owner.pw_uid, owner.pw_gid)
    (root / "users").write_text(f"{username}:{{PLAIN}}{password}\n")
    port = free_port()
    (root / "dovecot.conf").write_text(f"""
instance_name = desk-test-{port}
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_failure_delay = 0
auth_mechanisms = plain login
first_valid_uid = {owner.pw_uid}
last_valid_uid = {owner.pw_uid}
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
    except TimeoutError:
        process.kill()
        log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
        output = process.stdout.read().decode(errors="replace") if process.stdout else ""
        raise RuntimeError(f"dovecot did not start:\n{output}\n{log}") from None
    return Dovecot(root, port, username, password, process)

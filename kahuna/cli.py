"""The ``kahuna`` command."""

from gevent import monkey

# First of all: pymongo, pykka, smtplib and the WSGI server must see gevent's sockets and threads.
monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402

from kahuna import VERSION_LINE, collector  # noqa: E402
from kahuna.config import ConfigError, load, maildir_of  # noqa: E402
from kahuna.daemon import Kahuna, configure_logging, log  # noqa: E402
from kahuna.storage import Database  # noqa: E402
from kahuna.storage.embedded import EmbeddedDbError, EmbeddedFerretDB  # noqa: E402
from kahuna.storage.schema import SchemaError  # noqa: E402

DEFAULT_CONFIG = "/etc/kowabunga/kahuna.yml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kahuna", description="Kahuna, the Kowabunga orchestrator.")
    parser.add_argument("-v", "--version", action="version", version=VERSION_LINE)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("-c", "--config", help=f"YAML configuration file (default {DEFAULT_CONFIG}, "
                                                 "or built-in defaults with --embedded)")
        sub.add_argument("-d", "--debug", action="store_true", help="log at DEBUG level")
        sub.add_argument("--embedded", metavar="DATA_DIR",
                         help="use a private FerretDB (SQLite) keeping its data under DATA_DIR; unless the "
                              "configuration names an SMTP server (global.smtp.host), e-mails are written to "
                              "the maildir DATA_DIR/mail")
        return sub

    serve = command("serve", "serve the API, the agent socket and the metadata endpoint")
    serve.add_argument("--port", type=int, help="listen on this port instead of global.http.port")
    command("migrate", "bring the database schema up to date, then exit")
    command("check-config", "validate the configuration, then exit")
    bootstrap = command("bootstrap-admin", "create the first superAdmin if there is no user yet")
    bootstrap.add_argument("--email", help="its e-mail address (default global.adminEmail)")
    drain = command("drain", "move every instance off a Kaktus node in maintenance (kMotion), through the running "
                             "Kahuna's API")
    drain.add_argument("kaktus", metavar="KAKTUS", help="the node's name or id")
    drain.add_argument("--url", help="the API's base URL (default global.publicUrl + /api/v1)")
    drain.add_argument("--api-key", help="a superAdmin API key (default global.apiKey, or KAHUNA_API_KEY)")
    drain.add_argument("--enable-maintenance", action="store_true",
                       help="put the node in maintenance first if it is not (a drain requires it)")
    drain.add_argument("--allow-cold", action="store_true",
                       help="move instances that cannot move live by shutting them down and restarting them on "
                            "their new host (released Kaktus agents move cold only)")
    return parser


def _config(args: argparse.Namespace):
    path = args.config
    if path is None and not args.embedded:
        # A drain is a client: with --url and --api-key it needs no configuration file.
        path = None if args.command == "drain" and not os.path.exists(DEFAULT_CONFIG) else DEFAULT_CONFIG
    overrides: dict[str, object] = {}
    defaults: dict[str, object] = {}
    if args.embedded:
        overrides.update({"global.db.embedded.enabled": True, "global.db.embedded.dataDir": args.embedded})
        # The embedded default has no SMTP server: mail goes to DATA_DIR/mail, unless the file names a server.
        defaults["global.smtp.host"] = ""
    if args.debug:
        overrides["global.logLevel"] = "DEBUG"
    return load(path, overrides=overrides, defaults=defaults)


def _mail_destination(config) -> str:
    smtp = config.global_.smtp
    if smtp.host:
        return f"sent through the SMTP server {smtp.host}:{smtp.port}"
    return f"written to the maildir {maildir_of(config)} (no SMTP server)"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"kahuna: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.global_.logLevel)
    if args.command == "drain":
        return _drain(config, args)
    if args.command == "check-config":
        print("configuration is valid")
        print(f"e-mails are {_mail_destination(config)}")
        return 0
    try:
        if args.command == "migrate":
            return _migrate(config)
        kahuna = Kahuna.start(config)
    except (SchemaError, EmbeddedDbError) as exc:
        print(f"kahuna: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the database is unreachable, most often
        print(f"kahuna: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "bootstrap-admin":
            return _print_bootstrap_admin(kahuna, args.email)
        _print_bootstrap_admin(kahuna, None, quiet=True)
        server = kahuna.listen(port=args.port)
        # What start-up built (modules, the app, the schemas), and later the connected agents, live long:
        # keep them out of the garbage collector's full passes, which would walk them all each time.
        collector.keep_long_lived_aside()
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, server.stop, config.global_.http.shutdownGraceSeconds)
        kahuna.serve_forever()
        log.info("stopped")
        return 0
    finally:
        kahuna.stop()


def _print_bootstrap_admin(kahuna: Kahuna, email: str | None, quiet: bool = False) -> int:
    created = kahuna.bootstrap_admin(email)
    if created is None:
        if not quiet:
            print("kahuna: users exist already; no bootstrap administrator created", file=sys.stderr)
        return 0 if quiet else 1
    address, password = created
    print(f"Bootstrap superAdmin created. Log in with e-mail {address} and password {password}\n"
          f"(shown once; change it with PUT /api/v1/user/<id>/password or reset it by e-mail).", flush=True)
    return 0


def _drain(config, args: argparse.Namespace) -> int:
    from kahuna.drain import Api, ApiError, Drain, DrainError

    url = args.url or f"{config.global_.publicUrl.rstrip('/')}/api/v1"
    api_key = args.api_key or config.global_.apiKey
    if not api_key:
        print("kahuna: drain needs a superAdmin API key: --api-key, KAHUNA_API_KEY or global.apiKey", file=sys.stderr)
        return 2
    try:
        report = Drain(Api(url, api_key), out=lambda line: print(line, flush=True)).run(
            args.kaktus, enable_maintenance=args.enable_maintenance, allow_cold=args.allow_cold)
    except (DrainError, ApiError) as exc:
        print(f"kahuna: {exc}", file=sys.stderr)
        return 2
    return 0 if report.complete else 1


def _migrate(config) -> int:
    import datetime

    g = config.global_
    embedded = EmbeddedFerretDB(g.db.embedded.dataDir, g.db.embedded.ferretdb).start() if g.db.embedded.enabled \
        else None
    db = Database(embedded.uri if embedded else g.db.uri, g.db.name, g.db.timeoutSeconds)
    try:
        # Links the Go Kahuna e-mailed and that were not followed yet keep working for their usual lifetime.
        report = db.migrate(registration_lifetime=datetime.timedelta(hours=g.accounts.registrationLinkHours),
                            reset_lifetime=datetime.timedelta(minutes=g.accounts.passwordResetLinkMinutes))
        for line in report.lines():
            print(line)
        print("database schema is up to date")
        return 0
    finally:
        db.close()
        if embedded:
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())

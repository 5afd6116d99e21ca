"""The `wasi-tls-host` command: `run` or `serve` a component, and `wit`/`build` for guest authors.

Every mistake on the command line is reported by argparse as one `error:`
line (after the usage) with exit status 2, before anything runs.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import ipaddress
import math
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import log
from .config import (
    DEFAULT_GRACE,
    DEFAULT_MAX_CONNECTIONS,
    HostConfig,
    Limits,
    NetRule,
    Preopen,
    host_key,
)
from .guest_run import EXIT_STATUSES, GuestTrap
from .host import Host, HostError
from .runtime.context import DEBUG_VARIABLE, debug_from_environment
from .tls.policy import TlsPolicy

if TYPE_CHECKING:
    from .http.settings import ConnectionLimits
    from .tls.identity import PrivateIdentity

#: Exit status when the guest traps, as `wasmtime run` reports it (128 + SIGABRT).
TRAP_STATUS = EXIT_STATUSES["trap"]
#: Exit status when the guest runs past --timeout, as coreutils `timeout` reports it.
TIMEOUT_STATUS = EXIT_STATUSES["timeout"]
#: Exit status when the guest is still running at the end of the grace
#: period after SIGTERM (128 + SIGTERM).
STOPPED_STATUS = EXIT_STATUSES["stopped"]
#: Exit status after Ctrl-C, as shells report SIGINT (128 + 2).
INTERRUPTED_STATUS = 130
#: Exit status for a command-line mistake, or when the host cannot start the guest.
USAGE_STATUS = 2
#: Exit status when `build` fails.
BUILD_FAILED_STATUS = 1
#: Where `run` takes the password of encrypted identities when no file is named.
IDENTITY_PASSWORD_VARIABLE = "WASI_TLS_HOST_IDENTITY_PASSWORD"

COMMANDS_HELP = """\
commands:
  run COMPONENT [ARGS...]        run a WASI 0.2 command component
  serve [--addr H:P] COMPONENT   serve an HTTP handler component over HTTPS or HTTP
  wit DIR                        write the WIT this host implements into DIR
  build APP_DIR -w WORLD -o OUT  build a guest app into a component
  conformance [--host-cmd T]     run the wasi:tls conformance suite against a host

`wasi-tls-host COMMAND --help` describes a command's options.
"""


# -- argument types: each raises ArgumentTypeError, which argparse reports as one line

def _env_pair(text: str) -> tuple[str, str | None]:
    """`KEY=VALUE`, or `KEY` for the host's own value (none if it has none)."""
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE or KEY, got {text!r}")
    return key, value if sep else os.environ.get(key)


def _parsed(parse):
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return convert


def _existing_file(what: str):
    def convert(text: str) -> str:
        if not os.path.exists(text):
            raise argparse.ArgumentTypeError(f"{what} not found: {text}")
        if os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"{what} is a directory, not a file: {text}")
        if not os.path.isfile(text):
            raise argparse.ArgumentTypeError(f"{what} is not a regular file: {text}")
        return text
    return convert


def _existing_directory(text: str) -> Path:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a directory: {text}")
    return Path(text)


def _writable_directory(text: str) -> Path:
    """A directory that exists or can be created (not an existing file)."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"exists and is not a directory: {text}")
    return Path(text)


def _output_file(text: str) -> Path:
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"is a directory: {text}")
    return Path(text)


@dataclass(frozen=True)
class _IdentitySpec:
    """One `--identity`: a name and its PEM chain and key files, or its PKCS#12 file.
    Loaded once every option is read, since a key may need the password."""

    name: str
    files: tuple[str, ...]

    def load(self, password: bytes | None) -> PrivateIdentity:
        from .tls.identity import PrivateIdentity  # cryptography: only when asked
        if len(self.files) == 1:
            return PrivateIdentity.from_pkcs12(self.files[0], password=password)
        return PrivateIdentity.from_files(*self.files, password=password)


def _identity(text: str) -> _IdentitySpec:
    """`NAME=CERTFILE,KEYFILE` or `NAME=P12FILE`."""
    name, sep, files = text.partition("=")
    parts = tuple(files.split(","))
    if not sep or not name or len(parts) > 2 or not all(parts):
        raise argparse.ArgumentTypeError(
            f"expected NAME=CERTFILE,KEYFILE or NAME=P12FILE, got {text!r}")
    return _IdentitySpec(name, parts)


def _load_identities(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    """Replace the `--identity` and `--http-client-identity` specs by
    identities, opening encrypted keys with the password from
    --identity-password-file or $WASI_TLS_HOST_IDENTITY_PASSWORD. That
    variable is removed from this process's environment, so that no guest
    inherits it (--inherit-env)."""
    password, source = _identity_password(parser, options.identity_password_file)
    if not (options.identity or options.http_client_identity):
        return  # `cryptography` costs tens of milliseconds: only for identities
    from .tls.identity import IdentityError, IdentityPasswordError
    for option in ("identity", "http_client_identity"):
        loaded = []
        for spec in getattr(options, option):
            try:
                loaded.append((spec.name, spec.load(password)))
            except IdentityError as error:
                hint = ""
                if isinstance(error, IdentityPasswordError):
                    hint = (f" (password from {source})" if source else
                            f" (give the password with --identity-password-file FILE or "
                            f"${IDENTITY_PASSWORD_VARIABLE})")
                flag = "--" + option.replace("_", "-")
                parser.error(f"argument {flag}: identity {spec.name!r}: {error}{hint}")
        setattr(options, option, loaded)


def _identity_password(parser: argparse.ArgumentParser,
                       password_file: str | None) -> tuple[bytes | None, str | None]:
    """The password and where it came from, or (None, None). A file's one
    trailing line break is not part of it."""
    from_environment = os.environb.pop(IDENTITY_PASSWORD_VARIABLE.encode(), None)
    if password_file is None:
        if from_environment is None:
            return None, None
        return from_environment, f"${IDENTITY_PASSWORD_VARIABLE}"
    try:
        with open(password_file, "rb") as file:
            password = file.read()
    except OSError as error:
        parser.error(f"argument --identity-password-file: cannot read {password_file}: "
                     f"{error.strerror or error}")
    password = password.removesuffix(b"\n").removesuffix(b"\r")
    return password, f"--identity-password-file {password_file}"


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number 0 or more, got {text!r}")
    return int(text)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, "
                                         f"got {text!r}")
    return seconds


def _seconds(text: str) -> float:
    """0 or more seconds."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, 0 or more, "
                                         f"got {text!r}")
    return seconds


def _positive_count(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, got {text!r}")
    return int(text)


_SIZE = re.compile(r"(?P<number>[0-9]+)(?P<unit>[KMG]?)(?:i?B)?", re.IGNORECASE)


def _size(text: str) -> int:
    """Bytes, or with a K, M or G suffix (binary: 64K is 64 KiB)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None or int(match["number"]) == 0:
        raise argparse.ArgumentTypeError(f"expected a size above 0 such as 512K, 64M or 2G, "
                                         f"got {text!r}")
    return int(match["number"]) << (10 * " KMG".index(match["unit"].upper() or " "))


def _address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, an IPv6 address in brackets (`[::1]:8443`)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port = rest[1:] if bracket and rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":")
        if ":" in host:
            host = ""  # an IPv6 address without brackets: its port cannot be told apart
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (an IPv6 address in brackets, "
                                         f"port 0 for any free one), got {text!r}")
    return host, int(port)


def installed_command() -> str:
    """This environment's `wasi-tls-host` console script (next to its Python)."""
    return str(Path(sys.executable).with_name("wasi-tls-host"))


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that can check its options together once all are read:
    `finish(parser, options)` may change them, or report a mistake through
    `parser.error` (an identity's key needs the password, which another
    option gives, wherever it stands)."""

    def __init__(self, *args, finish=None, **kwargs):
        self._checking_argument = False
        super().__init__(*args, **kwargs)
        self.finish = finish

    def add_argument(self, *args, **kwargs):
        self._checking_argument = True
        try:
            return super().add_argument(*args, **kwargs)
        finally:
            self._checking_argument = False

    def _get_formatter(self):
        # add_argument formats an option only to check its metavar against its
        # nargs, which takes no width; reading the terminal's width imports
        # shutil (with bz2 and lzma) at every start-up. Help and errors still
        # get the terminal's width.
        if self._checking_argument:
            # Every HelpFormatter takes a width; typeshed's protocol names only prog.
            return self.formatter_class(prog=self.prog, width=80)  # type: ignore[call-arg]
        return super()._get_formatter()

    def parse_known_args(self, args=None, namespace=None):
        options, extras = super().parse_known_args(args, namespace)
        if self.finish is not None:
            self.finish(self, options)
        return options, extras


class _VersionAction(argparse.Action):
    """`--version`, reading the installed distribution's version only when asked
    (importlib.metadata costs tens of milliseconds at every start-up)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib import metadata
        try:
            version = metadata.version("wasi-tls-host")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            version = "unknown"
        print(f"wasi-tls-host {version}")
        parser.exit()


# -- the parser ---------------------------------------------------------------------

def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line. With `command`, only that command gets its options,
    the others are listed by name: a `run` need not import, or describe, what
    `serve`, `build` or `conformance` take."""
    parser = _Parser(
        prog="wasi-tls-host",
        description="Run WASI 0.2 command components with wasi:tls provided by Python's ssl, "
                    "and build guests for them.",
        epilog=COMMANDS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_VersionAction)
    # With `prog` given, argparse does not format a usage line (at the
    # terminal's width) to find it.
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND",
                                     prog=parser.prog)
    for name, add in _ADDERS.items():
        if command in (None, name):
            add(commands)
        else:
            commands.add_parser(name, help=SUMMARIES[name])
    return parser


#: What each command does, in one line (`wasi-tls-host --help`).
SUMMARIES = {
    "run": "run a command component",
    "serve": "serve an HTTP handler component over HTTPS or HTTP",
    "wit": "write the WIT this host implements into a directory",
    "build": "build a guest app into a component",
    "conformance": "run the wasi:tls conformance suite against a host",
}


def _add_run(commands) -> None:
    run = commands.add_parser(
        "run", help=SUMMARIES["run"], finish=_load_identities,
        description="Run a WASI 0.2 command component (its wasi:cli/run export). The guest "
                    "gets nothing it is not granted by the options below. Exit status: the "
                    f"guest's (0 or 1); {TRAP_STATUS} when it traps, also on a host defect, "
                    f"past --max-memory or --fuel (one line; --debug adds the wasm backtrace "
                    f"or the traceback); {TIMEOUT_STATUS} past --timeout; "
                    f"{INTERRUPTED_STATUS} after Ctrl-C; {USAGE_STATUS} when it cannot start. "
                    "SIGTERM drains the guest: its listening sockets close (clients are "
                    "refused, and the guest library's servers stop accepting) while its "
                    "connections go on; the exit status is the guest's if it ends within "
                    f"--grace, else it is stopped and the status is {STOPPED_STATUS}.")
    _add_guest_options(
        run,
        identity_help="provision a TLS identity for the guest under NAME (repeatable): a PEM "
                      "certificate chain, leaf first, and its private key (PEM or DER, "
                      "encrypted or not), or a PKCS#12 (.p12/.pfx) file. The guest gets it "
                      "from wasi-tls-host:tls/preopens; the key never enters the guest",
        client_ca_help="trust the CA certificates in PEM for the client certificates a guest "
                       "server asks for (repeatable; none trusted by default)",
        debug_help="print the wasm backtrace of a trap and the full traceback of a host "
                   "defect")
    run.add_argument("--max-connections", type=_count, default=DEFAULT_MAX_CONNECTIONS,
                     metavar="N",
                     help="the most sockets the guest may hold open at once: TCP connections "
                          "it makes or accepts, listeners and UDP sockets. Beyond it, creating "
                          "or accepting one fails with new-socket-limit (and a client waits in "
                          f"the listen backlog). Default: {DEFAULT_MAX_CONNECTIONS}")
    run.add_argument("--grace", type=_seconds, default=DEFAULT_GRACE, metavar="SECONDS",
                     help="after SIGTERM, how long the guest may take to finish its "
                          f"connections before it is stopped (default: {DEFAULT_GRACE:g})")
    _add_limits(run, "the guest", timed_out=f"exit {TIMEOUT_STATUS}",
                ended=f"exit {TRAP_STATUS}")
    run.add_argument("component", type=_existing_file("component"),
                     help="the .wasm component to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the guest")


def _add_guest_options(parser: argparse.ArgumentParser, *, identity_help: str,
                       client_ca_help: str, debug_help: str) -> None:
    """What `run` and `serve` grant a guest alike: environment, files,
    network, and TLS trust and identities. `--identity` and `--client-ca`
    are for the guest's TLS servers under `run` and for the host's own
    HTTPS server under `serve`, and `--debug` prints a trap's backtrace
    under `run` but logs it for a request under `serve`, so each command
    says what they mean."""
    parser.add_argument("--env", action="append", type=_env_pair, default=[], metavar="K[=V]",
                        help="set an environment variable for the guest, or with K alone pass "
                             "the host's value of K (repeatable)")
    parser.add_argument("--inherit-env", action="store_true",
                        help="pass the host's environment to the guest")
    parser.add_argument("--dir", action="append", type=_parsed(Preopen.parse), default=[],
                        metavar="HOST[::GUEST][:ro]",
                        help="preopen a host directory, optionally under another guest path "
                             "and read-only (repeatable)")
    parser.add_argument("--allow-net", action="append", type=_parsed(NetRule.parse),
                        default=[], metavar="HOST[:PORT]",
                        help="allow connecting, binding and sending to HOST (any port, or "
                             "PORT); repeatable")
    parser.add_argument("--inherit-network", action="store_true",
                        help="allow every network address")
    parser.add_argument("--ca-file", action="append", type=_existing_file("CA file"),
                        default=[], metavar="PEM",
                        help="trust the CA certificates in PEM for TLS (repeatable; replaces "
                             "the default certifi bundle)")
    parser.add_argument("--system-trust", action="store_true",
                        help="also trust the operating system's CA store")
    parser.add_argument("--identity", action="append", type=_identity, default=[],
                        metavar="NAME=CERTFILE,KEYFILE|NAME=P12FILE", help=identity_help)
    parser.add_argument("--identity-password-file",
                        type=_existing_file("identity password file"), metavar="FILE",
                        help="the password of encrypted --identity keys and PKCS#12 files (one "
                             "for all; one trailing line break is ignored). Without it, "
                             f"${IDENTITY_PASSWORD_VARIABLE} is used, if set; the guest never "
                             "sees it")
    parser.add_argument("--http-client-identity", action="append", type=_identity, default=[],
                        metavar="HOST=CERTFILE,KEYFILE|HOST=P12FILE",
                        help="present this client certificate (a PEM chain, leaf first, and "
                             "its key, or a PKCS#12 file, as for --identity) when a server at "
                             "HOST asks for one during a wasi:http request (repeatable, one "
                             "per host); the key never enters the guest")
    parser.add_argument("--client-ca", action="append",
                        type=_existing_file("client CA file"), default=[], metavar="PEM",
                        help=client_ca_help)
    parser.add_argument("--crl-file", action="append", type=_existing_file("CRL file"),
                        default=[], metavar="PEM",
                        help="check server certificates (of the host's TLS clients) and client "
                             "certificates (that servers ask for) against the CRLs in PEM "
                             "(repeatable). Strict: a certificate whose issuer has no current "
                             "CRL among them is refused too")
    parser.add_argument("--tls-keylog", metavar="FILE",
                        help="append TLS secrets to FILE in NSS key log format (for "
                             "Wireshark); defaults to $SSLKEYLOGFILE")
    parser.add_argument("--tls-handshake-timeout", type=_positive_seconds, default=30.0,
                        metavar="SECONDS",
                        help="fail a TLS handshake that takes longer (default: 30)")
    parser.add_argument("--tls-resume", action="store_true",
                        help="let the guest's TLS clients resume a session from an earlier "
                             "connection to the same server (same name, address, trust, ALPN "
                             "ids and client certificate) in the same run (serve: the same "
                             "request); sessions are never shared between runs. Off by default")
    parser.add_argument("--debug", action="store_true",
                        help=f"{debug_help} (also: {DEBUG_VARIABLE}=1)")
    _add_cache_options(parser)


def _add_limits(parser: argparse.ArgumentParser, each: str, *, timed_out: str,
                ended: str) -> None:
    """The limits on a guest. `each` says what one guest is (the run's, a
    request's); `timed_out` and `ended` what follows when it is ended past
    --timeout, and past --fuel or a memory cap it cannot live with."""
    parser.add_argument("--timeout", type=_positive_seconds, metavar="SECONDS",
                        help=f"end {each} after SECONDS, waiting in poll included "
                             f"({timed_out})")
    parser.add_argument("--max-memory", type=_size, metavar="SIZE",
                        help=f"cap each linear memory (and table) of {each} at SIZE bytes, "
                             "with a K, M or G suffix; growing beyond it fails in the guest "
                             f"(if that ends it: {ended})")
    parser.add_argument("--fuel", type=_positive_count, metavar="N",
                        help=f"end {each} once it has run N units of fuel (about one per "
                             f"WebAssembly instruction) ({ended})")


def _add_cache_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--cache-dir", type=_writable_directory, metavar="DIR",
                       help="keep compiled components in DIR (default: "
                            "$XDG_CACHE_HOME/wasi-tls-host/components)")
    where.add_argument("--no-cache", action="store_true",
                       help="compile the component on every run, keeping nothing")


def _add_serve(commands) -> None:
    from .http.settings import DEFAULT_PORT, ConnectionLimits
    limits = ConnectionLimits()
    serve = commands.add_parser(
        "serve", help=SUMMARIES["serve"],
        finish=_finish_serve,
        description="Serve a component that exports wasi:http/incoming-handler (the "
                    "wasi:http/proxy world), as `wasmtime serve` does: each request runs in a "
                    "fresh instance, granted what the options below grant (outgoing requests "
                    "too, as under `run`). HTTPS with --identity, plain HTTP without. The "
                    "first line on stdout is `serving on URL`. SIGINT or SIGTERM stops "
                    "accepting, lets requests in flight finish within --grace seconds, and "
                    f"exits 0. Exit status {USAGE_STATUS} when it cannot start.")
    serve.add_argument("--addr", type=_address, default=("127.0.0.1", DEFAULT_PORT),
                       metavar="HOST:PORT",
                       help=f"where to listen (default: 127.0.0.1:{DEFAULT_PORT}; port 0 picks "
                            "a free one, which the first line says)")
    _add_guest_options(
        serve,
        identity_help="serve HTTPS with this certificate chain (PEM, leaf first) and key, or "
                      "PKCS#12 file (repeatable: the server name a client asks for (SNI) "
                      "chooses among them, the first by default). The key never enters the "
                      "guest",
        client_ca_help="trust the CA certificates in PEM for client certificates "
                       "(repeatable); they are asked for as --client-auth says",
        debug_help="log the wasm backtrace of a request's trap above its line, and print "
                   "the full traceback of a host defect")
    serve.add_argument("--client-auth", choices=("request", "require"),
                       help="ask clients for a certificate (request), or refuse a client "
                            "without one (require); verified against --client-ca (default "
                            "with --client-ca: require)")
    serve.add_argument("--max-connections", dest="connection_limit", type=_positive_count,
                       default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                       help="the most client connections served at once, per worker; more "
                            "wait in the listen backlog (default: "
                            f"{DEFAULT_MAX_CONNECTIONS})")
    serve.add_argument("--workers", type=_positive_count, default=1, metavar="N",
                       help="serve from N processes sharing the listening socket, so that a "
                            "component uses N cores (default: 1)")
    serve.add_argument("--head-timeout", type=_positive_seconds, default=limits.head_timeout,
                       metavar="SECONDS",
                       help="close a connection whose request head is not complete within "
                            "SECONDS of its start (the first request's, of the connection's "
                            f"start) (default: {limits.head_timeout:g})")
    serve.add_argument("--idle-timeout", type=_positive_seconds, default=limits.idle_timeout,
                       metavar="SECONDS",
                       help="close a kept-alive connection idle for SECONDS, and fail a "
                            "request or response body that does not move for as long "
                            f"(default: {limits.idle_timeout:g})")
    serve.add_argument("--max-head-size", type=_size, default=limits.max_head_size,
                       metavar="SIZE",
                       help="answer 431 to a request head larger than SIZE bytes (K and M "
                            f"suffixes; default: {limits.max_head_size // 1024}K)")
    serve.add_argument("--grace", type=_seconds, default=DEFAULT_GRACE, metavar="SECONDS",
                       help="once stopped, how long requests in flight may take to finish "
                            f"before they are cut (default: {DEFAULT_GRACE:g})")
    _add_limits(serve, "each request's guest", timed_out="its client gets a 500, or a cut "
                "response", ended="its client gets a 500, or a cut response")
    serve.add_argument("component", type=_existing_file("component"),
                       help="the .wasm component to serve")


def _finish_serve(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    """What `serve`'s options require of each other, then its identities."""
    from .http.settings import MIN_HEAD_SIZE
    if options.client_auth is not None and not options.client_ca:
        parser.error("argument --client-auth: needs --client-ca, the CAs whose client "
                     "certificates to accept")
    if options.client_ca and not options.identity:
        parser.error("argument --client-ca: client certificates need HTTPS: give --identity")
    if options.client_ca and options.client_auth is None:
        options.client_auth = "require"
    if options.max_head_size < MIN_HEAD_SIZE:
        parser.error(f"argument --max-head-size: must be at least {MIN_HEAD_SIZE // 1024}K")
    _load_identities(parser, options)


def _serve_limits(options: argparse.Namespace) -> ConnectionLimits:
    from .http.settings import ConnectionLimits
    return ConnectionLimits(head_timeout=options.head_timeout,
                            idle_timeout=options.idle_timeout,
                            max_head_size=options.max_head_size)


def _add_wit(commands) -> None:
    from .guest_tools import WORLDS
    wit = commands.add_parser(
        "wit", help=SUMMARIES["wit"],
        description="Write the WIT tree this host implements into DIR (created if missing): "
                    f"the worlds in tls.wit ({', '.join(WORLDS)}), WASI 0.2 (wasi:http "
                    "too), wasi:tls and wasi-tls-host:tls under deps/. Use it with "
                    "`componentize-py -d DIR -w WORLD --features tls ...`, or let "
                    "`wasi-tls-host build` do that.")
    wit.add_argument("directory", type=_writable_directory, metavar="DIR")


def _add_build(commands) -> None:
    from .guest_tools import DEFAULT_MODULE
    build = commands.add_parser(
        "build", help=SUMMARIES["build"],
        description="Build a Python guest app into a WebAssembly component with "
                    "componentize-py, the bundled WIT and the guest library `wasi_guest` "
                    "(and h11, which `wasi_guest.http` needs). The app is a module (default "
                    f"`{DEFAULT_MODULE}.py` in APP_DIR) with a `Run` class implementing "
                    "wasi:cli/run.")
    build.add_argument("app_dir", type=_existing_directory, metavar="APP_DIR",
                       help="directory of the app's module")
    build.add_argument("-w", "--world", required=True,
                       help="`plain` (WASI 0.2 only), `tls-client` (also the upstream "
                            "wasi:tls client), `tls-server` or `tls-full-client` (the full "
                            "wasi-tls-host:tls draft), `http-client` (wasi:http requests) "
                            "or `http-proxy` (an incoming-handler, as for `wasmtime serve`); "
                            "with --wit, a world of that tree")
    build.add_argument("--wit", type=_existing_directory, metavar="DIR",
                       help="a WIT tree of your own whose world the app targets (its package's "
                            "worlds by their bare names); it may use the host's packages, "
                            "e.g. `include wasi-tls-host:guests/plain;`")
    build.set_defaults(usage_error=build.error)
    build.add_argument("-o", "--output", required=True, type=_output_file, metavar="OUT.wasm",
                       help="the component to write")
    build.add_argument("-m", "--module", default=DEFAULT_MODULE,
                       help=f"the app's module name (default: {DEFAULT_MODULE})")
    build.add_argument("-p", "--python-path", action="append", type=_existing_directory,
                       default=[], metavar="DIR",
                       help="another directory of modules the app imports (repeatable)")


def _add_conformance(commands) -> None:
    from .conformance import command
    command.add_parser(commands, installed_command(), SUMMARIES["conformance"])


#: Each command's options, added only for the command being run (`build_parser`).
_ADDERS = {"run": _add_run, "serve": _add_serve, "wit": _add_wit, "build": _add_build,
           "conformance": _add_conformance}


# -- the commands -----------------------------------------------------------------

def config_from_args(options: argparse.Namespace) -> HostConfig:
    return HostConfig(
        args=[options.component, *getattr(options, "args", [])],
        env={key: value for key, value in options.env if value is not None},
        inherit_env=options.inherit_env,
        preopens=list(options.dir),
        allow_net=list(options.allow_net),
        inherit_network=options.inherit_network,
        max_connections=getattr(options, "max_connections", DEFAULT_MAX_CONNECTIONS),
        # run's: serve drains its own way (ServeSettings.grace).
        sigterm_grace=options.grace if options.command == "run" else None,
        tls=TlsPolicy(ca_files=list(options.ca_file), system_trust=options.system_trust,
                      client_ca_files=list(options.client_ca),
                      crl_files=list(options.crl_file),
                      identities=_unique_names(options.identity),
                      handshake_timeout=options.tls_handshake_timeout,
                      resume_sessions=options.tls_resume,
                      **({"keylog_file": options.tls_keylog} if options.tls_keylog else {})),
        http_client_identities=_by_host(options.http_client_identity),
        limits=limits_from_args(options),
    )


class CommandLineLimits(Limits):
    """Limits whose messages name the options that set them."""

    NAMES = {"max_memory": "--max-memory", "fuel": "--fuel"}


def limits_from_args(options: argparse.Namespace) -> Limits:
    return CommandLineLimits(timeout=options.timeout, max_memory=options.max_memory,
                             fuel=options.fuel)


def host_from_args(options: argparse.Namespace) -> Host:
    cache = False if options.no_cache else options.cache_dir or True
    return Host(cache=cache, debug=options.debug or None)


def _unique_names(identities: list[tuple[str, PrivateIdentity]]) -> dict[str, PrivateIdentity]:
    named = dict(identities)
    if len(named) != len(identities):
        raise HostError("each --identity needs a name of its own")
    return named


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _by_host(identities: list[tuple[str, PrivateIdentity]]) -> dict[str, PrivateIdentity]:
    """--http-client-identity, keyed as requests look it up (`host_key`)."""
    by_host = {}
    for host, identity in identities:
        key = host_key(host)
        if ":" in key and not _is_ipv6(key):
            raise HostError(f"--http-client-identity {host}: give the HOST alone, no port")
        by_host[key] = identity
    if len(by_host) != len(identities):
        raise HostError("--http-client-identity takes each HOST once")
    return by_host


def run_command(options: argparse.Namespace) -> int:
    log.print_to_stderr()
    try:
        config = config_from_args(options)
        config.tls.check()
    except (ValueError, HostError) as error:
        print(f"wasi-tls-host: {error}", file=sys.stderr)
        return USAGE_STATUS
    try:
        return host_from_args(options).run(options.component, config=config)
    except HostError as error:
        print(f"wasi-tls-host: {error}", file=sys.stderr)
        return USAGE_STATUS
    except GuestTrap as trap:
        # What the guest wrote is above; the backtrace only when asked for.
        if trap.details and (options.debug or debug_from_environment()):
            print(trap.details.rstrip(), file=sys.stderr)
        print(f"wasi-tls-host: {trap.message}", file=sys.stderr)
        return trap.exit_status
    except KeyboardInterrupt:
        print("wasi-tls-host: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS


def serve_command(options: argparse.Namespace) -> int:
    from .http import workers
    from .http.serve import listen, url_of
    from .http.settings import ServeSettings
    log.print_to_stderr()
    host_name, port = options.addr
    try:
        config = config_from_args(options)
        config.tls.check()
        settings = ServeSettings(host=host_name, port=port,
                                 client_auth=options.client_auth or "none",
                                 max_connections=options.connection_limit,
                                 limits=_serve_limits(options), grace=options.grace)
        https = settings.tls(config) is not None
        listener = listen(host_name, port)
    except (ValueError, HostError) as error:
        print(f"wasi-tls-host: {error}", file=sys.stderr)
        return USAGE_STATUS
    except OSError as error:
        shown = f"[{host_name}]" if ":" in host_name else host_name
        print(f"wasi-tls-host: cannot listen on {shown}:{port}: {error.strerror or error}",
              file=sys.stderr)
        return USAGE_STATUS
    url = url_of(listener, https)

    def start():
        return host_from_args(options).serve(options.component, config=config,
                                             settings=settings, listener=listener)

    def announce() -> None:
        print(f"serving on {url}", flush=True)

    if options.workers > 1:
        try:
            return workers.supervise(options.workers, start, announce)
        except workers.StartupError as error:
            print(f"wasi-tls-host: {error}", file=sys.stderr)
            return USAGE_STATUS
    try:
        server = start()
    except (HostError, GuestTrap) as error:
        print(f"wasi-tls-host: {error}", file=sys.stderr)
        return USAGE_STATUS
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: server.shutdown())
    announce()
    while not server.wait(0.5):
        pass
    if threading.active_count() > 1:
        # A connection cut at the end of the grace period may still be
        # unwinding a guest: leave without waiting for it (it would be torn
        # down with the interpreter).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def wit_command(options: argparse.Namespace) -> int:
    from .guest_tools import copy_wit
    directory = options.directory
    try:
        count = copy_wit(directory)
    except OSError as error:
        print(f"wasi-tls-host: cannot write {directory}: {error.strerror or error}",
              file=sys.stderr)
        return USAGE_STATUS
    print(f"wrote {count} WIT files to {directory} (worlds in {directory / 'tls.wit'})")
    return 0


def build_command(options: argparse.Namespace) -> int:
    from .guest_tools import WORLDS, build_component
    if options.wit is None and options.world not in WORLDS:
        choices = ", ".join(map(repr, WORLDS))
        options.usage_error(f"argument -w/--world: invalid choice: {options.world!r} "
                            f"(choose from {choices})")
    # componentize-py would take half a minute to say the module is missing.
    search = [options.app_dir, *options.python_path]
    if not any((directory / f"{options.module}.py").is_file()
               or (directory / options.module / "__init__.py").is_file()
               for directory in search):
        print(f"wasi-tls-host: no module {options.module!r} ({options.module}.py or "
              f"{options.module}/__init__.py) in {', '.join(map(str, search))}",
              file=sys.stderr)
        return USAGE_STATUS
    try:
        result = build_component(options.app_dir, options.world, options.output,
                                 module=options.module, python_path=tuple(options.python_path),
                                 wit_dir=options.wit)
    except OSError as error:
        print(f"wasi-tls-host: cannot write {options.output}: {error.strerror or error}",
              file=sys.stderr)
        return USAGE_STATUS
    if not result.ok:
        separator = "\n" if "\n" in result.error else " "
        print(f"wasi-tls-host: build failed:{separator}{result.error}", file=sys.stderr)
        return BUILD_FAILED_STATUS
    size_mb = options.output.stat().st_size / 1e6
    print(f"built {options.output} ({options.world}, {size_mb:.1f} MB, {result.seconds:.1f}s)")
    return 0


def conformance_command(options: argparse.Namespace) -> int:
    from .conformance import command
    return command.run(options)


COMMANDS = {"run": run_command, "serve": serve_command, "wit": wit_command, "build": build_command,
            "conformance": conformance_command}


def main(argv: list[str] | None = None) -> int:
    # Everything loaded so far (the host, wasmtime, argparse) lives as long as
    # the process: out of the collector's sight, it is not walked again by
    # the run's collections. At exit the same goes for what the run left: the
    # interpreter's last collections would trace it all for cycles (~25 ms
    # after a TLS guest's run) to free memory the process's end frees anyway.
    gc.freeze()
    atexit.register(gc.freeze)
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    options = parser.parse_args(argv)
    if options.command is None:
        parser.print_usage(sys.stderr)
        print(f"\n{COMMANDS_HELP}", end="", file=sys.stderr)
        return USAGE_STATUS
    try:
        return COMMANDS[options.command](options)
    except Exception as bug:  # a host defect outside any guest call: one line, not a dump
        if getattr(options, "debug", False) or debug_from_environment():
            import traceback
            traceback.print_exc()
        print(f"wasi-tls-host: internal host error: {bug!r}", file=sys.stderr)
        return TRAP_STATUS


if __name__ == "__main__":
    sys.exit(main())

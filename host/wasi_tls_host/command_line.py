"""`wasi-tls-host run …`: run a command component with the permissions given."""

from __future__ import annotations

import argparse
import sys

from .config import HostConfig, NetRule, Preopen, TlsSettings
from .host import GuestTrap, Host, HostError

#: Exit status when the guest traps, as `wasmtime run` reports it (128 + SIGABRT).
TRAP_STATUS = 134
#: Exit status after Ctrl-C, as shells report SIGINT (128 + 2).
INTERRUPTED_STATUS = 130
#: Exit status when the host cannot start the guest at all.
USAGE_STATUS = 2


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _parsed(parse):
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wasi-tls-host",
        description="Run WASI 0.2 command components with wasi:tls provided by Python's ssl.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a command component")
    run.add_argument("--env", action="append", type=_env_pair, default=[], metavar="K=V",
                     help="set an environment variable for the guest (repeatable)")
    run.add_argument("--inherit-env", action="store_true",
                     help="pass the host's environment to the guest")
    run.add_argument("--dir", action="append", type=_parsed(Preopen.parse), default=[],
                     metavar="HOST[::GUEST][:ro]",
                     help="preopen a host directory, optionally under another guest path "
                          "and read-only (repeatable)")
    run.add_argument("--allow-net", action="append", type=_parsed(NetRule.parse), default=[],
                     metavar="HOST[:PORT]",
                     help="allow connecting, binding and sending to HOST (any port, or PORT); "
                          "repeatable")
    run.add_argument("--inherit-network", action="store_true",
                     help="allow every network address")
    run.add_argument("--ca-file", action="append", default=[], metavar="PEM",
                     help="trust the CA certificates in PEM for TLS (repeatable; replaces "
                          "the default certifi bundle)")
    run.add_argument("--system-trust", action="store_true",
                     help="also trust the operating system's CA store")
    run.add_argument("--tls-keylog", metavar="FILE",
                     help="append TLS secrets to FILE in NSS key log format (for Wireshark); "
                          "defaults to $SSLKEYLOGFILE")
    run.add_argument("--tls-handshake-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="fail a TLS handshake that takes longer (default: 30)")
    run.add_argument("component", help="the .wasm component to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the guest")
    return parser


def config_from_args(options: argparse.Namespace) -> HostConfig:
    return HostConfig(
        args=[options.component, *options.args],
        env=dict(options.env),
        inherit_env=options.inherit_env,
        preopens=list(options.dir),
        allow_net=list(options.allow_net),
        inherit_network=options.inherit_network,
        tls=TlsSettings(ca_files=list(options.ca_file), system_trust=options.system_trust,
                        keylog_file=options.tls_keylog,
                        handshake_timeout=options.tls_handshake_timeout),
    )


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    config = config_from_args(options)
    try:
        config.tls.client_context()
    except ValueError as error:
        print(f"wasi-tls-host: {error}", file=sys.stderr)
        return USAGE_STATUS
    try:
        return Host().run(options.component, config=config)
    except HostError as error:
        print(f"wasi-tls-host: {error}", file=sys.stderr)
        return USAGE_STATUS
    except GuestTrap as trap:
        print(f"wasi-tls-host: the guest trapped: {trap}", file=sys.stderr)
        return TRAP_STATUS
    except KeyboardInterrupt:
        print("wasi-tls-host: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS


if __name__ == "__main__":
    sys.exit(main())

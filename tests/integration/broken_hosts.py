"""Deliberately broken builds of this host, for showing that the conformance
suite catches them. Test code only: nothing here is a product option.

    python broken_hosts.py FLAW run [RUN OPTIONS] COMPONENT [ARGS...]

patches one flaw into the host, then runs `wasi-tls-host` with the rest of
the arguments. FLAW is one of FLAWS.
"""

from __future__ import annotations

import ssl
import sys

from wasi_tls_host import command_line
from wasi_tls_host.runtime import futures
from wasi_tls_host.tls.policy import TlsPolicy
from wasi_tls_host.wasi_tls import session


def no_verification() -> None:
    """Clients accept any certificate for any name."""
    build = TlsPolicy._new_client_context

    def unverified(self, *args):
        context = build(self, *args)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    TlsPolicy._new_client_context = unverified


def no_hostname_check() -> None:
    """Clients verify the chain but not the name it was issued for."""
    build = TlsPolicy._new_client_context

    def any_name(self, *args):
        context = build(self, *args)
        context.check_hostname = False
        return context
    TlsPolicy._new_client_context = any_name


def no_close_notify() -> None:
    """close-output closes the guest's side but never sends close_notify."""
    def silently(self) -> None:
        self.closed = True
    session.TlsOutput.close_notify = silently


def result_twice() -> None:
    """A future hands out its value again on every later `get`, not only once."""
    take_once = futures.Future.take

    def take(self):
        if self.state is futures.FutureState.CONSUMED:
            return self.taken
        self.taken = take_once(self)
        return self.taken
    futures.Future.take = take


FLAWS = {"no-verification": no_verification, "no-hostname-check": no_hostname_check,
         "no-close-notify": no_close_notify, "result-twice": result_twice}

if __name__ == "__main__":
    FLAWS[sys.argv[1]]()
    sys.exit(command_line.main(sys.argv[2:]))

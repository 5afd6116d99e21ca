"""The peer's ciphertext on its way to OpenSSL, for `tls.core`.

Until the handshake is complete, what the transport delivers waits in an
inbox: a server reads the ClientHello from it before OpenSSL exists, and a
handshake that may still stop is fed one record at a time (`give_next`), so
that the core can check for a stop point after each. Once the handshake is
complete the inbox is emptied into OpenSSL's incoming ``MemoryBIO`` and
every later byte goes straight there.
"""

from __future__ import annotations

import ssl

from .progress import Point, Progress
from .records import take_record


class Inbound:
    def __init__(self, progress: Progress) -> None:
        self.bio = ssl.MemoryBIO()  #: what OpenSSL reads
        self.inbox = bytearray()  #: the peer's bytes not yet given to OpenSSL
        self.transport_eof = False
        self._eof_given = False
        self._progress = progress

    def receive(self, data: bytes) -> None:
        if self.transport_eof:
            raise ValueError("receive_ciphertext() called after receive_eof()")
        if self._progress.done:
            self.bio.write(data)
        else:
            self.inbox += data

    def receive_eof(self) -> bool:
        """Note the transport's end; False if it was already noted."""
        if self.transport_eof:
            return False
        self.transport_eof = True
        if self._progress.done:
            self._give_eof()
        return True

    def give_inbox(self) -> None:
        """Hand OpenSSL every byte received and not yet given to it."""
        self.bio.write(self.inbox)
        self.inbox.clear()

    def give_all(self) -> None:
        """The inbox, and the transport's end if it came."""
        self.give_inbox()
        if self.transport_eof:
            self._give_eof()

    def give_next(self) -> bool:
        """Give OpenSSL the next record (or, with no stop ahead, everything
        received); False when there is nothing to give or a stop comes first."""
        progress = self._progress
        held = progress.take_held()
        if held is not None:
            self.bio.write(held)
            return True
        if progress.limit == Point.DONE:
            if self.inbox:
                self.give_inbox()
                return True
        else:
            record = take_record(self.inbox)
            if record is not None:
                if not progress.admit(record):
                    return False
                self.bio.write(record)
                return True
        if self.transport_eof and not self._eof_given:
            self.give_all()
            return True
        return False

    def _give_eof(self) -> None:
        if not self._eof_given:
            self._eof_given = True
            self.bio.write_eof()

"""bulk-candidates LEN SECONDS ROUNDS

The guest side of bench/bulk_candidates.py: moves LEN bytes at a time into
and out of the guest in each candidate form, as bytes the guest could use,
for about SECONDS per form and round, forms taking turns, ROUNDS rounds.
Before timing, every form is checked against `read-list-u8` both ways
(the host raises on a write it does not get back exactly).

Prints one JSON line: {"read hex": [MB/s per round], ...}. Besides the
forms, "decode hex" and "decode base64" time the guest's decoding alone,
and "read nothing" a call that moves no bytes (MB/s as if it had moved LEN).
"""

import array
import binascii
import json
import sys

from wit_world import exports
from wit_world.imports import candidates, monotonic_clock

#: Bytes above 0x7f lose their top bit: the host's text is its bytes so masked.
TO_ASCII = bytes(i & 0x7F for i in range(256))


def reads(size):
    hex_text = candidates.read_hex(size)
    base64_text = candidates.read_base64(size)
    return {
        "read list<u8>": lambda: candidates.read_list_u8(size),
        "read list<u64>": lambda: array.array("Q", candidates.read_list_u64(size)).tobytes(),
        "read ascii": lambda: candidates.read_ascii(size).encode("ascii"),
        "read hex": lambda: binascii.a2b_hex(candidates.read_hex(size)),
        "read base64": lambda: binascii.a2b_base64(candidates.read_base64(size)),
        "read latin-1": lambda: candidates.read_latin1(size).encode("latin-1"),
        "read nothing": lambda: candidates.read_nothing(size),
        "decode hex": lambda: binascii.a2b_hex(hex_text),
        "decode base64": lambda: binascii.a2b_base64(base64_text),
    }


def writes(data):
    text = data.translate(TO_ASCII)
    return {
        "write list<u8>": lambda: candidates.write_list_u8(data),
        "write list<u64>": lambda: candidates.write_list_u64(memoryview(data).cast("Q").tolist()),
        "write ascii": lambda: candidates.write_ascii(text.decode("ascii")),
        "write hex": lambda: candidates.write_hex(data.hex()),
        "write base64": lambda: candidates.write_base64(
            binascii.b2a_base64(data, newline=False).decode("ascii")),
        "write latin-1": lambda: candidates.write_latin1(data.decode("latin-1")),
    }


def check(size):
    data = candidates.read_list_u8(size)
    text = data.translate(TO_ASCII)
    for name, read in reads(size).items():
        if name.startswith("read ") and name != "read nothing":
            expected = text if name == "read ascii" else data
            if read() != expected:
                raise AssertionError(f"{name} did not bring the host's bytes")
    for write in writes(data).values():
        write()
    return data


def rate(move, size, seconds):
    """MB/s of `move` repeated for about `seconds`."""
    start = monotonic_clock.now()
    stop = start + int(seconds * 1e9)
    count = 0
    while True:
        move()
        count += 1
        now = monotonic_clock.now()
        if now >= stop:
            return count * size / ((now - start) / 1e9) / 1e6


class Run(exports.Run):
    def run(self) -> None:
        size, seconds, rounds = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
        data = check(size)
        forms = reads(size) | writes(data)
        results = {name: [] for name in forms}
        for _ in range(rounds):
            for name, move in forms.items():
                results[name].append(rate(move, size, seconds))
        print(json.dumps(results), flush=True)

"""profile_handshake.py: where a guest's TLS handshake spends its time, for
bench/README.md. Not part of `make bench` (it patches timers into the host).

The net-bench guest makes COUNT TLS connections in a row to a Python ssl
server on loopback (the same scenario as make bench's handshake figure), in
this process, with a clock around:

* every host call and resource drop (medians per call, by name);
* the host's waits in `poll(2)`: how long the server takes to answer;
* each OpenSSL handshake step, split by whether the peer's bytes had arrived.

Then the same client handshake in memory, in a tight loop (Python ssl on both
ends, the host's own client context), and native Python handshakes over
loopback: the two references.

    python bench/profile_handshake.py [COUNT]
"""

from __future__ import annotations

import collections
import io
import json
import select
import ssl
import statistics
import subprocess
import sys
import time

from run import HERE, NATIVE, NET_BENCH, ensure_net_bench_guests

from wasi_tls_host import Host, HostConfig, NetRule, TlsPolicy
from wasi_tls_host.runtime import calls
from wasi_tls_host.runtime import poll as host_poll
from wasi_tls_host.tls import openssl
from wasi_tls_host.tls.core import Op, TlsCore

IN_MEMORY = 300
SERVER = """
import json, sys, loopback
credentials = loopback.Credentials()
peer = loopback.Peer(loopback.idle, credentials.server_context())
print(json.dumps({"address": peer.address, "ca_file": str(credentials.ca_file),
                  "cert_file": str(credentials.cert_file), "key_file": str(credentials.key_file)}),
      flush=True)
sys.stdin.read()
"""


class Clocks:
    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = collections.defaultdict(list)
        self.impls: dict[str, list[float]] = collections.defaultdict(list)
        self.waits: list[float] = []
        self.steps: dict[bool, list[float]] = {True: [], False: []}
        self.sequence: list[str] = []  # every call's name, in order

    def install(self) -> None:
        sequence = self.sequence

        def timed(original):
            def invoke(callback, *args):
                sequence.append(callback.name)
                start = time.perf_counter()
                try:
                    return original(callback, *args)
                finally:
                    self.calls[callback.name].append(time.perf_counter() - start)
            return invoke
        calls.HostFunction.invoke = timed(calls.HostFunction.invoke)
        calls.Destructor.invoke = timed(calls.Destructor.invoke)

        # The implementation alone, without the call layer's lifting and lowering.
        impls, bind = self.impls, calls.HostFunction.__init__

        def timed_bind(function, ctx, name, impl):
            def timed_impl(*args):
                start = time.perf_counter()
                try:
                    return impl(*args)
                finally:
                    impls[name].append(time.perf_counter() - start)
            bind(function, ctx, name, timed_impl)
        calls.HostFunction.__init__ = timed_bind

        waits = self.waits

        class TimedPoll:
            def __init__(self) -> None:
                self.poller = select.poll()

            def register(self, fd: int, events: int) -> None:
                self.poller.register(fd, events)

            def poll(self, *timeout):
                start = time.perf_counter()
                try:
                    return self.poller.poll(*timeout)
                finally:
                    waits.append(time.perf_counter() - start)

        class TimedSelect:
            poll = TimedPoll

        host_poll.select = TimedSelect

        call = TlsCore._call

        def timed_call(connection, op, *args):
            if op != Op.HANDSHAKE:
                return call(connection, op, *args)
            had_input = connection._inbound.bio.pending > 0
            start = time.perf_counter()
            try:
                return call(connection, op, *args)
            finally:
                self.steps[had_input].append(time.perf_counter() - start)
        TlsCore._call = timed_call


def calls_per_handshake(sequence: list[str]) -> tuple[float, float]:
    """Host calls per handshake: those between the guest's two clock reads
    around each handshake (its timed span), and all of them, closing
    included (from one handshake's first call to the next one's)."""
    clock_reads = [index for index, name in enumerate(sequence) if name.endswith("#now")]
    starts, ends = clock_reads[0::2], clock_reads[1::2]
    timed = [end - start - 1 for start, end in zip(starts, ends, strict=False)]
    cycles = [later - start - 2 for start, later in zip(starts, starts[1:], strict=False)]
    return statistics.mean(timed), statistics.mean(cycles)


def guest_handshakes(address: str, ca_file: str, count: int) -> list[float]:
    stdout = io.BytesIO()
    config = HostConfig(stdout=stdout, allow_net=[NetRule.parse("127.0.0.1")],
                        tls=TlsPolicy(ca_files=[ca_file]))
    status = Host().run(str(NET_BENCH), args=["net-bench", "handshakes", address, str(count),
                                              "localhost"], config=config)
    if status != 0:
        raise SystemExit(f"net-bench exited {status}")
    return json.loads(stdout.getvalue().decode().splitlines()[-1])["seconds"]


def native_handshakes(address: str, ca_file: str, count: int) -> list[float]:
    out = subprocess.run([*NATIVE, "handshakes", address, str(count), "localhost", ca_file],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])["seconds"]


def in_memory_client_seconds(ca_pem: str, server_context: ssl.SSLContext) -> float:
    """Median time of the client's OpenSSL steps for one handshake, with the
    server answering in the same thread (its time not counted)."""
    client_context = TlsPolicy().client_context()  # the host's settings; trust below
    client_context.load_verify_locations(cadata=ca_pem)
    openssl.observe_handshake_messages(client_context)  # as the core does
    times = []
    for _ in range(IN_MEMORY):
        bios = [ssl.MemoryBIO() for _ in range(4)]
        client = client_context.wrap_bio(bios[0], bios[1], server_hostname="localhost")
        server = server_context.wrap_bio(bios[2], bios[3], server_side=True)
        spent, done = 0.0, {client: False, server: False}
        while not all(done.values()):
            for side in (client, server):
                start = time.perf_counter()
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
                if side is client:
                    spent += time.perf_counter() - start
                bios[2].write(bios[1].read())
                bios[0].write(bios[3].read())
        times.append(spent)
    return statistics.median(times)


def main(count: int) -> None:
    ensure_net_bench_guests()
    # The server runs in a process of its own: its threads must not take
    # the GIL from the host being measured.
    server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=HERE, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        files = json.loads(server.stdout.readline())
        address, ca_file = files["address"], files["ca_file"]
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(files["cert_file"], files["key_file"])
        with open(ca_file) as pem:
            ca_pem = pem.read()
        native = statistics.median(native_handshakes(address, ca_file, count))
        clocks = Clocks()
        clocks.install()
        guest = statistics.median(guest_handshakes(address, ca_file, count))
    finally:
        server.stdin.close()
        server.wait()
    in_memory = in_memory_client_seconds(ca_pem, server_context)

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:7.3f} ms"

    print(f"{count} handshakes in a row, connect included, medians")
    print(f"  guest through the host          {ms(guest)}")
    print(f"  native Python ssl               {ms(native)}")
    print("host calls: median per call (of it, the call layer: lifting and lowering) "
          "x calls per handshake")
    accounted = 0.0
    for name, samples in sorted(clocks.calls.items(), key=lambda item: -sum(item[1])):
        per_handshake = len(samples) / count
        if per_handshake < 0.5:
            continue  # start-up and exit
        share = statistics.median(samples) * per_handshake
        accounted += share if "drop" not in name and "close-output" not in name else 0.0
        implementation = clocks.impls.get(name)
        layer = (f"({ms(statistics.median(samples) - statistics.median(implementation))})"
                 if implementation else " " * 12)
        print(f"  {name:68s} {ms(statistics.median(samples))} {layer} x {per_handshake:3.1f}")
    wait = sum(clocks.waits) / count
    with_input, without = clocks.steps[True], clocks.steps[False]
    timed_calls, cycle_calls = calls_per_handshake(clocks.sequence)
    print(f"  host calls per handshake: {timed_calls:.2f} in the timed span (the guest's clock "
          f"reads left out), {cycle_calls:.2f} with closing")
    print(f"  of which waiting in poll(2)      {ms(wait)} per handshake")
    print(f"OpenSSL steps per handshake: {len(with_input) / count:.1f} with new bytes "
          f"(median {ms(statistics.median(with_input))}), {len(without) / count:.1f} without "
          f"(median {ms(statistics.median(without))}); "
          f"{ms((sum(with_input) + sum(without)) / count)} in all")
    print(f"  the same client handshake in memory, tight loop   {ms(in_memory)}")
    print(f"host calls in the timed span (drops and close-output excluded) {ms(accounted)}; "
          f"the rest, {ms(guest - accounted)}, is the guest's own code and wasmtime")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)

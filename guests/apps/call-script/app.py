"""call-script: makes the raw WASI calls it reads on stdin and answers each on stdout.

It is the guest side of the host's stateful tests (tests/fuzz/
test_stateful_calls.py): the test decides every call, in any order,
including the ones a careful guest never makes (a second finish, a write
past the budget, a drop while children live), and this guest makes exactly
that call through its generated bindings, with no helper in between.

Each line on stdin is a JSON list, ``[operation, argument, ...]`` (see
OPERATIONS). Resources the calls return (streams, sockets, pollables,
handshakes, futures, connections, errors) are kept under small integer ids
that later lines name. Each line gets one JSON line back:

    {"ok": VALUE}           the call returned VALUE (resources as their ids)
    {"err": CODE}           its error value: a wasi:sockets error code,
                            "closed", or ["failed", ERROR_ID] for a stream
    {"refused": MESSAGE}    the bindings refused the call before it reached
                            the host (a resource already dropped or given away)

A call the host traps ends the guest: there is no answer, and the host
reports the trap. End of stdin ends the guest with status 0.
"""

import json
import weakref

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import (
    instance_network,
    monotonic_clock,
    network,
    poll,
    random,
    stdin,
    stdout,
    streams,
    tcp,
    tcp_create_socket,
    wasi_tls_types,
)

#: Most bytes one blocking-write-and-flush may carry (the WIT's limit).
WRITE_LIMIT = 4096
LOOPBACK = {"ipv4": (127, 0, 0, 1), "ipv6": (0, 0, 0, 0, 0, 0, 0, 1)}


class Objects:
    """The resources the test has been given ids for.

    A resource dropped or given away keeps its id: a later line that names
    it gets a stand-in holding the old handle, which is what a guest written
    closer to the metal could pass (the bindings themselves refuse to). A
    stand-in's drop drops the old handle once more, and only when asked.
    """

    def __init__(self):
        self.by_id = {}
        self.retired = {}
        self.stand_ins = []
        self.next_id = 1

    def keep(self, resource):
        object_id = self.next_id
        self.next_id += 1
        self.by_id[object_id] = resource
        return object_id

    def retire(self, *object_ids):
        """Note the handles of resources about to be dropped or given away."""
        for object_id in object_ids:
            if object_id not in self.retired:
                resource = self.by_id[object_id]
                self.retired[object_id] = (dict(vars(resource)), resource.finalizer.peek())

    def __getitem__(self, object_id):
        resource = self.by_id[object_id]
        if object_id not in self.retired:
            return resource
        attributes, dropping = self.retired[object_id]
        stand_in = object.__new__(type(resource))
        vars(stand_in).update(attributes)
        if dropping is not None:
            _, function, arguments, keywords = dropping
            stand_in.finalizer = weakref.finalize(stand_in, function, *arguments, **keywords)
            self.stand_ins.append(stand_in)
        return stand_in

    def forget_stand_ins(self):
        """Stand-ins must not drop anything when they are collected."""
        for stand_in in self.stand_ins:
            stand_in.finalizer.detach()
        self.stand_ins.clear()


OBJECTS = Objects()


def address(family, port):
    if family == "ipv4":
        return network.IpSocketAddress_Ipv4(network.Ipv4SocketAddress(port, LOOPBACK[family]))
    return network.IpSocketAddress_Ipv6(
        network.Ipv6SocketAddress(port, 0, LOOPBACK[family], 0))


def port_of(socket_address):
    return socket_address.value.port


def keep_all(*resources):
    return [OBJECTS.keep(resource) for resource in resources]


def poll_with_timer(pollables, timeout_ms):
    """Poll `pollables` and a timer, so that the call returns even if none is ready."""
    timer = monotonic_clock.subscribe_duration(timeout_ms * 1_000_000)
    try:
        ready = poll.poll(list(pollables) + [timer])
    finally:
        timer.__exit__(None, None, None)
    return [index for index in ready if index < len(pollables)]


def handshake_result(value):
    """What future-client-streams.get returned, as JSON."""
    if value is None:
        return "pending"
    if isinstance(value, Err):  # the outer result: the value was already taken
        return "taken"
    inner = value.value
    if isinstance(inner, Err):
        return {"failed": OBJECTS.keep(inner.value)}
    return {"connection": keep_all(*inner.value)}


def write_bytes(output_id, size):
    OBJECTS[output_id].write(bytes(size))


def giving_away(call, *object_ids):
    """`call()`, which takes ownership of the resources `object_ids` name."""
    resources = [OBJECTS[object_id] for object_id in object_ids]
    OBJECTS.retire(*object_ids)
    return call(*resources)


def drop(object_id):
    resource = OBJECTS[object_id]
    OBJECTS.retire(object_id)
    resource.__exit__(None, None, None)


OPERATIONS = {
    # sockets
    "network": lambda: OBJECTS.keep(instance_network.instance_network()),
    "tcp": lambda family: OBJECTS.keep(tcp_create_socket.create_tcp_socket(
        network.IpAddressFamily[family.upper()])),
    "start_connect": lambda sock, net, family, port: OBJECTS[sock].start_connect(
        OBJECTS[net], address(family, port)),
    "finish_connect": lambda sock: keep_all(*OBJECTS[sock].finish_connect()),
    "start_bind": lambda sock, net, family, port: OBJECTS[sock].start_bind(
        OBJECTS[net], address(family, port)),
    "finish_bind": lambda sock: OBJECTS[sock].finish_bind(),
    "start_listen": lambda sock: OBJECTS[sock].start_listen(),
    "finish_listen": lambda sock: OBJECTS[sock].finish_listen(),
    "accept": lambda sock: keep_all(*OBJECTS[sock].accept()),
    "local_port": lambda sock: port_of(OBJECTS[sock].local_address()),
    "shutdown": lambda sock, how: OBJECTS[sock].shutdown(tcp.ShutdownType[how.upper()]),
    # streams
    "read": lambda stream, size: len(OBJECTS[stream].read(size)),
    "skip": lambda stream, size: OBJECTS[stream].skip(size),
    "check_write": lambda stream: OBJECTS[stream].check_write(),
    "write": write_bytes,
    "write_zeroes": lambda stream, size: OBJECTS[stream].write_zeroes(size),
    "flush": lambda stream: OBJECTS[stream].flush(),
    "blocking_flush": lambda stream: OBJECTS[stream].blocking_flush(),
    "blocking_write_and_flush": lambda stream, size: OBJECTS[stream].blocking_write_and_flush(
        bytes(size)),
    "splice": lambda output, source, size: OBJECTS[output].splice(OBJECTS[source], size),
    # pollables
    "subscribe": lambda resource: OBJECTS.keep(OBJECTS[resource].subscribe()),
    "ready": lambda pollable: OBJECTS[pollable].ready(),
    "timers": lambda count, nanoseconds: keep_all(
        *(monotonic_clock.subscribe_duration(nanoseconds) for _ in range(count))),
    "poll": lambda ids, timeout_ms: poll_with_timer([OBJECTS[i] for i in ids], timeout_ms),
    # The same pollables again and again, `count` entries in one list.
    "poll_many": lambda ids, count, timeout_ms: len(poll_with_timer(
        [OBJECTS[ids[i % len(ids)]] for i in range(count)], timeout_ms)),
    # wasi:tls
    "tls_handshake": lambda name, source, sink: OBJECTS.keep(giving_away(
        lambda i, o: wasi_tls_types.ClientHandshake(name, i, o), source, sink)),
    "tls_finish": lambda handshake: OBJECTS.keep(giving_away(
        wasi_tls_types.ClientHandshake.finish, handshake)),
    "tls_get": lambda future: handshake_result(OBJECTS[future].get()),
    "close_output": lambda connection: OBJECTS[connection].close_output(),
    # anything
    "debug": lambda error: OBJECTS[error].to_debug_string(),
    "random": lambda size: len(random.get_random_bytes(size)),
    "drop": drop,
    "attributes": lambda resource: sorted(vars(OBJECTS[resource])),
}


def error_value(err):
    value = err.value
    if isinstance(value, streams.StreamError_Closed):
        return "closed"
    if isinstance(value, streams.StreamError_LastOperationFailed):
        return ["failed", OBJECTS.keep(value.value)]
    name = getattr(value, "name", None)
    return name.lower().replace("_", "-") if isinstance(name, str) else repr(value)


def answer(line):
    operation, *arguments = json.loads(line)
    try:
        return {"ok": OPERATIONS[operation](*arguments)}
    except Err as err:
        return {"err": error_value(err)}
    except Exception as refused:  # noqa: BLE001 - reported to the test, which judges it
        return {"refused": f"{type(refused).__name__}: {refused}"}
    finally:
        OBJECTS.forget_stand_ins()


def lines(source):
    pending = b""
    while True:
        try:
            chunk = source.blocking_read(65536)
        except Err:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line


def write_line(sink, text):
    data = text.encode() + b"\n"
    for start in range(0, len(data), WRITE_LIMIT):
        sink.blocking_write_and_flush(data[start:start + WRITE_LIMIT])


class Run(exports.Run):
    def run(self):
        sink = stdout.get_stdout()
        for line in lines(stdin.get_stdin()):
            write_line(sink, json.dumps(answer(line)))

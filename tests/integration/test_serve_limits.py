"""`wasi-tls-host serve` applies run's limits to each request's guest
(guests/apps/http-proxy through the installed command, over HTTP): a request
past --timeout, one that burns its --fuel, and one that allocates beyond
--max-memory each get a 500 and a line on stderr naming the limit, while the
server and the next request on the same connection go on. Each request has
the whole limit to itself: many small requests never add up to one."""

from __future__ import annotations

import time

import pytest
from serving import HttpClient, Served, get

#: Fuel for one request: the greeting needs far less, /compute/COMPUTE_STEPS far more.
FUEL = 50_000_000
COMPUTE_STEPS = 10_000_000
#: A memory limit the handler's instance fits in, and an allocation it does not.
MAX_MEMORY = "64M"
ALLOCATION_MIB = 128


@pytest.fixture(scope="module")
def handler(guests) -> str:
    return str(guests["http-proxy"])


def greeting_ok(reply) -> bool:
    return reply.status == 200 and reply.text.startswith("Hello from a")


def serve_and_break_a_limit(handler: str, limit: tuple[str, ...], target: str,
                            reason: str) -> tuple[float, str]:
    """Serve under `limit`, make the request that breaks it on a connection
    that then asks for the greeting, and a greeting on a new connection
    after that; (seconds the failing request took, the server's stderr)."""
    served = Served(handler, *limit)
    try:
        with HttpClient(served.port) as client:
            started = time.monotonic()
            failed = client.request("GET", target)
            took = time.monotonic() - started
            assert failed.status == 500
            assert greeting_ok(client.request("GET", "/"))
        for _ in range(3):  # the limit is each request's, not used up by the earlier ones
            assert greeting_ok(get(served.port))
    finally:
        assert served.stop() == 0
    assert f"GET {target}: " in served.stderr and reason in served.stderr
    return took, served.stderr


def test_a_request_past_the_timeout_gets_a_500(handler):
    took, _ = serve_and_break_a_limit(handler, ("--timeout", "1"), "/sleep/30000",
                                      "ran past its time limit (1 s)")
    assert 0.9 < took < 10


def test_a_computing_request_past_the_timeout_gets_a_500(handler):
    took, _ = serve_and_break_a_limit(handler, ("--timeout", "1"), "/compute/10000000000",
                                      "ran past its time limit (1 s)")
    assert 0.9 < took < 10


def test_a_request_that_burns_its_fuel_gets_a_500(handler):
    serve_and_break_a_limit(handler, ("--fuel", str(FUEL)), f"/compute/{COMPUTE_STEPS}",
                            f"ran out of fuel ({FUEL} units by --fuel)")


def test_a_request_that_allocates_beyond_the_memory_limit_gets_a_500(handler):
    _, stderr = serve_and_break_a_limit(handler, ("--max-memory", MAX_MEMORY),
                                        f"/allocate/{ALLOCATION_MIB}",
                                        "memory capped at 64 MiB by --max-memory")
    assert "MemoryError" in stderr


def test_an_allocation_within_the_memory_limit_is_served(handler):
    served = Served(handler, "--max-memory", MAX_MEMORY)
    try:
        reply = get(served.port, "/allocate/8")
    finally:
        assert served.stop() == 0
    assert (reply.status, reply.text) == (200, "allocated 8 MiB\n")

"""wasi_guest.bulk through a real guest: bytes intact over stdio, files, TCP
and TLS in both directions, errors as values, misuse as traps, and the same
app built for a portable world running under `wasmtime run`.

The bulk-probe guest (guests/apps/bulk-probe) reads a stream to its end or
writes stdin to a stream with wasi_guest.bulk, cutting its calls at sizes
hypothesis chooses. Most runs are in this process (`Host.run` of a loaded
component takes milliseconds); the command line, the traps and `wasmtime
run` are run as a user runs them.
"""

from __future__ import annotations

import http.server
import io
import socket
import ssl
import struct
import subprocess
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, run_host, run_wasmtime
from wasi_tls_host import Host, HostConfig, NetRule
from wasi_tls_host.config import Preopen
from wasi_tls_host.guest_tools import GUEST_LIB_DIR, WIT_DIR

#: Both kinds of bytes: any (the hex form) and below 0x80 (the ascii form).
PAYLOADS = st.one_of(st.binary(max_size=300_000),
                     st.binary(max_size=300_000).map(lambda data: bytes(b & 0x7F for b in data)))
SPLITS = st.lists(st.integers(min_value=1, max_value=100_000), min_size=1,
                  max_size=6).map(lambda sizes: ",".join(map(str, sizes)))
THROUGH_THE_GUEST = settings(max_examples=12, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])
WRITE_FUNCTION = "wasi-tls-host:io/bulk@0.1.0#write"


@pytest.fixture(scope="module")
def host():
    return Host()


@pytest.fixture(scope="module")
def probe(guests):
    return str(guests["bulk-probe"])


@pytest.fixture(scope="module")
def portable_probe(guests):
    """The same app built for tls-client, a world without the fast path."""
    output = ROOT / "build" / "test-guests" / "bulk-probe-tls-client.wasm"
    app = ROOT / "guests" / "apps" / "bulk-probe"
    newest = max(path.stat().st_mtime for root in (app, GUEST_LIB_DIR, WIT_DIR)
                 for path in root.rglob("*") if "__pycache__" not in path.parts)
    if not output.exists() or output.stat().st_mtime <= newest:
        subprocess.run([sys.executable, "-m", "wasi_tls_host", "build", str(app),
                        "-w", "tls-client", "-o", str(output)], check=True,
                       capture_output=True)
    return str(output)


def run(host: Host, probe: str, *args: str, stdin: bytes = b"", **config) -> tuple[int, bytes,
                                                                                        str]:
    """(status, stdout, stderr) of the probe run in this process."""
    stdout, stderr = io.BytesIO(), io.BytesIO()
    status = host.run(probe, args=["bulk-probe", *args],
                      config=HostConfig(stdin=io.BytesIO(stdin), stdout=stdout, stderr=stderr,
                                        **config))
    return status, stdout.getvalue(), stderr.getvalue().decode()


# -- peers --------------------------------------------------------------------------

class Peer:
    """One connection on loopback, served in a thread: `send` sends its
    bytes and ends (TLS: close_notify), `collect` keeps what arrives until
    the end (TLS: the client's close_notify, answered). `reset` resets the
    connection once the first bytes have arrived (so the client is past its
    connect); `truncate` sends its bytes after the handshake and then resets,
    with no close_notify."""

    def __init__(self, mode: str, data: bytes = b"", context: ssl.SSLContext | None = None):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.mode, self.data, self.context = mode, data, context
        self.received = bytearray()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        self.listener.close()
        try:
            if self.mode in ("reset", "truncate"):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if self.mode == "reset":
                conn.recv(1)
                return
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            if self.mode == "truncate":
                conn.sendall(self.data)
                return
            if self.mode == "send":
                conn.sendall(self.data)
            else:
                while chunk := conn.recv(65536):
                    self.received += chunk
            if self.context is not None:
                conn.unwrap()
        except BaseException as error:  # reported by finish()
            self.error = error
        finally:
            conn.close()

    def finish(self) -> bytes:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the peer is still waiting"
        if self.error is not None:
            raise self.error
        return bytes(self.received)


def net_config(pki=None) -> dict:
    config = {"allow_net": [NetRule.parse("127.0.0.1")]}
    if pki is not None:
        config["tls"] = pki.policy(handshake_timeout=10)
    return config


@pytest.fixture(scope="module")
def tls_server(pki):
    def context(version: str) -> ssl.SSLContext:
        return pki.server_context(pki.leaf("127.0.0.1"), version)
    return context


# -- which path ---------------------------------------------------------------------

def test_the_host_world_takes_the_fast_path_and_tls_client_the_standard_one(
        host, probe, portable_probe):
    assert run(host, probe, "path")[:2] == (0, b"bulk\n")
    assert run(host, portable_probe, "path")[:2] == (0, b"standard\n")


# -- bytes intact -----------------------------------------------------------------

@THROUGH_THE_GUEST
@given(data=PAYLOADS, sizes=SPLITS, blocking=st.booleans())
def test_stdin_read_through_bulk_arrives_intact(host, probe, data, sizes, blocking):
    args = ["read", "stdin", sizes, *(["--blocking"] if blocking else [])]
    status, out, err = run(host, probe, *args, stdin=data)
    assert (status, err) == (0, "")
    assert out == data


@THROUGH_THE_GUEST
@given(data=PAYLOADS, sizes=SPLITS)
def test_stdout_written_through_bulk_arrives_intact(host, probe, data, sizes):
    status, out, err = run(host, probe, "write", "stdout", sizes, stdin=data)
    assert (status, err) == (0, "")
    assert out == data


@THROUGH_THE_GUEST
@given(data=PAYLOADS, sizes=SPLITS)
def test_tcp_both_ways(host, probe, data, sizes):
    source = Peer("send", data)
    status, out, err = run(host, probe, "read", f"tcp:{source.address}", sizes, **net_config())
    source.finish()
    assert (status, err, out == data) == (0, "", True)
    sink = Peer("collect")
    status, out, err = run(host, probe, "write", f"tcp:{sink.address}", sizes, stdin=data,
                           **net_config())
    assert (status, err) == (0, "")
    assert sink.finish() == data


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=PAYLOADS, sizes=SPLITS, blocking=st.booleans())
def test_tls_both_ways(host, probe, pki, tls_server, version, data, sizes, blocking):
    source = Peer("send", data, tls_server(version))
    args = ["read", f"tls:{source.address}", sizes, *(["--blocking"] if blocking else [])]
    status, out, err = run(host, probe, *args, **net_config(pki))
    source.finish()
    assert (status, err, out == data) == (0, "", True)
    sink = Peer("collect", context=tls_server(version))
    status, out, err = run(host, probe, "write", f"tls:{sink.address}", sizes, stdin=data,
                           **net_config(pki))
    assert (status, err) == (0, "")
    assert sink.finish() == data


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=PAYLOADS, sizes=SPLITS)
def test_a_file_written_and_read_back(host, probe, tmp_path_factory, data, sizes):
    directory = tmp_path_factory.mktemp("files")
    files = {"preopens": [Preopen(str(directory), "/data")]}
    status, _, err = run(host, probe, "write", "file:blob", sizes, stdin=data, **files)
    assert (status, err) == (0, "")
    assert (directory / "blob").read_bytes() == data
    status, out, err = run(host, probe, "read", "file:blob", sizes, **files)
    assert (status, err, out == data) == (0, "", True)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=PAYLOADS)
def test_the_librarys_read_all_and_write_all_over_stdio_and_tcp(host, probe, data):
    """io.read_all and io.write_all, which move their bytes through bulk."""
    status, out, err = run(host, probe, "read-all", "stdin", stdin=data)
    assert (status, err, out == data) == (0, "", True)
    source = Peer("send", data)
    status, out, err = run(host, probe, "read-all", f"tcp:{source.address}", **net_config())
    source.finish()
    assert (status, err, out == data) == (0, "", True)
    sink = Peer("collect")
    status, _, err = run(host, probe, "write-all", f"tcp:{sink.address}", stdin=data,
                         **net_config())
    assert (status, err) == (0, "")
    assert sink.finish() == data


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=PAYLOADS)
def test_the_librarys_read_all_and_write_all_over_tls(host, probe, pki, tls_server, version,
                                                      data):
    """TlsConnection.read_all and write_all."""
    source = Peer("send", data, tls_server(version))
    status, out, err = run(host, probe, "read-all", f"tls:{source.address}", **net_config(pki))
    source.finish()
    assert (status, err, out == data) == (0, "", True)
    sink = Peer("collect", context=tls_server(version))
    status, _, err = run(host, probe, "write-all", f"tls:{sink.address}", stdin=data,
                         **net_config(pki))
    assert (status, err) == (0, "")
    assert sink.finish() == data


BODY = bytes(range(256)) * 9000 + b"<html>text at the end</html>\n"


class HttpsServer:
    """Serves BODY over HTTPS: framed by Content-Length, chunked, or (as an
    HTTP/1.0 server does) by the end of the connection, which sends
    close_notify, or with `truncate` does not (http.server's own way)."""

    def __init__(self, context: ssl.SSLContext, framing: str, truncate: bool = False):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0" if framing == "close" else "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                self.send_response(200)
                if framing == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                elif framing == "content-length":
                    self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                if framing != "chunked":
                    self.wfile.write(BODY)
                else:
                    for start in range(0, len(BODY), 100_000):
                        piece = BODY[start:start + 100_000]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")

            def log_message(self, format, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def shutdown_request(self, request):
                if not truncate:
                    try:
                        request.unwrap()
                    except (OSError, ssl.SSLError):
                        pass
                request.close()
        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/blob"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
def test_an_https_body_through_h11(host, probe, pki, tls_server, version, framing):
    server = HttpsServer(tls_server(version), framing)
    try:
        status, out, err = run(host, probe, "get", server.url, **net_config(pki))
    finally:
        server.close()
    assert (status, err, out == BODY) == (0, "", True)


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
@pytest.mark.parametrize("world", ["host", "portable"])
def test_an_https_download_to_a_file(host, probe, portable_probe, pki, tls_server, tmp_path,
                                     version, framing, world):
    """http.get(url, to=path): framed by length or by the end, the body goes
    from the connection to the file inside the host, in either world."""
    server = HttpsServer(tls_server(version), framing)
    try:
        status, _, err = run(host, probe if world == "host" else portable_probe, "download",
                             server.url, "/data/blob",
                             preopens=[Preopen(str(tmp_path), "/data")], **net_config(pki))
    finally:
        server.close()
    assert (status, err) == (0, "status 200\n")
    assert (tmp_path / "blob").read_bytes() == BODY


def test_a_download_cut_short_is_an_error_not_a_whole_file(host, probe, pki, tls_server,
                                                           tmp_path, version):
    server = HttpsServer(tls_server(version), "close", truncate=True)
    try:
        status, _, err = run(host, probe, "download", server.url, "/data/blob",
                             preopens=[Preopen(str(tmp_path), "/data")], **net_config(pki))
    finally:
        server.close()
    assert (status, err) == (1, "error: peer closed without close_notify (truncated)\n")


def test_a_download_outside_every_preopen_is_no_entry(host, probe, pki, tls_server, tmp_path,
                                                      version):
    server = HttpsServer(tls_server(version), "content-length")
    try:
        status, _, err = run(host, probe, "download", server.url, "/elsewhere/blob",
                             preopens=[Preopen(str(tmp_path), "/data")], **net_config(pki))
    finally:
        server.close()
    assert (status, err) == (1, "error: no-entry: /elsewhere/blob\n")


def test_forwarding_stays_in_the_host_and_moves_everything(host, probe, pki, tls_server,
                                                           tmp_path, version):
    data = bytes(range(256)) * 4096 + b"tail"
    (tmp_path / "in").write_bytes(data)
    files = {"preopens": [Preopen(str(tmp_path), "/data")]}
    status, _, err = run(host, probe, "forward", "file:in", "file:copy", **files)
    assert (status, err) == (0, f"forwarded {len(data)}\n")
    assert (tmp_path / "copy").read_bytes() == data
    source = Peer("send", data, tls_server(version))
    status, _, err = run(host, probe, "forward", f"tls:{source.address}", "file:download",
                         **files, **net_config(pki))
    source.finish()
    assert (status, err) == (0, f"forwarded {len(data)}\n")
    assert (tmp_path / "download").read_bytes() == data


# -- errors are values, misuse is a trap ---------------------------------------------

def test_a_truncated_tls_stream_is_a_failed_read(host, probe, pki, tls_server, version):
    """A TLS peer that resets instead of sending close_notify: the bytes
    before it are delivered, then the read fails (never a clean end)."""
    data = b"\x00\xff" * 50_000
    peer = Peer("truncate", data, tls_server(version))
    status, out, err = run(host, probe, "read", f"tls:{peer.address}", "65536",
                           **net_config(pki))
    peer.finish()
    assert status == 1
    assert err.startswith("error: failed: ")
    assert data.startswith(out)


def test_writing_to_a_peer_that_reset_is_an_error_not_a_crash(host, probe):
    peer = Peer("reset")
    status, _, err = run(host, probe, "write", f"tcp:{peer.address}", "65536",
                         stdin=b"\xff" * (8 << 20), **net_config())
    peer.finish()
    assert status == 1
    # bulk.write fails, or the flush after it when the kernel took the last bytes.
    assert err.startswith("error: ") and ("connection-reset" in err or "pipe" in err), err


@pytest.mark.parametrize(("case", "message"), [
    ("beyond-permit", "write of 65537 bytes exceeds the 65536 bytes check-write permitted"),
    ("odd-hex", "a hex chunk does not decode: Odd-length string"),
    ("bad-hex", "a hex chunk does not decode: Non-hexadecimal digit found"),
    ("non-ascii", "an ascii chunk holds 'é' at 3, which is above 0x7f"),
])
def test_misuse_traps_naming_the_function(probe, case, message):
    result = run_host(probe, "misuse", case)
    stderr = result.stderr.decode()
    assert result.returncode == 134, stderr
    assert f"{WRITE_FUNCTION}: {message}" in stderr
    assert "Traceback" not in stderr


# -- portable: the same app where the fast path is not there ----------------------------

def test_the_portable_build_moves_bytes_under_this_host(host, portable_probe):
    data = bytes(range(256)) * 300
    assert run(host, portable_probe, "read", "stdin", "1000,70000", stdin=data)[:2] == (0, data)
    assert run(host, portable_probe, "write", "stdout", "333", stdin=data)[:2] == (0, data)


def test_a_tls_client_guest_still_runs_under_wasmtime_run(portable_probe):
    data = bytes(range(256)) * 300 + b"tail"
    tls = ("-S", "tls")  # wasmtime links wasi:tls only when asked
    result = run_wasmtime(portable_probe, "path", flags=tls)
    assert (result.returncode, result.stdout) == (0, b"standard\n"), result.stderr.decode()
    result = run_wasmtime(portable_probe, "read", "stdin", "1000,70000", stdin=data, flags=tls)
    assert (result.returncode, result.stdout == data) == (0, True), result.stderr.decode()
    result = run_wasmtime(portable_probe, "write", "stdout", "333,4096", stdin=data, flags=tls)
    assert (result.returncode, result.stdout == data) == (0, True), result.stderr.decode()
    sink = Peer("collect")
    result = run_wasmtime(portable_probe, "write", f"tcp:{sink.address}", "5000", stdin=data,
                          flags=("-S", "tls,inherit-network"))
    assert result.returncode == 0, result.stderr.decode()
    assert sink.finish() == data


def test_the_portable_build_has_no_import_of_this_host(portable_probe):
    """What makes it portable: it imports only WASI and wasi:tls."""
    import wasmtime
    from wasmtime import component as wc
    engine = wasmtime.Engine()
    imports = wc.Component.from_file(engine, portable_probe).type.imports(engine)
    assert not [name for name in imports if name.startswith("wasi-tls-host:")]

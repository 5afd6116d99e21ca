"""`make demo` end to end: a guest fetches a page over HTTPS, a guest serves one."""

import subprocess
import sys

import pytest
import trustme

from wasi_tls_host import demo


def test_demo_prints_the_response(guests):
    result = subprocess.run([sys.executable, "-m", "wasi_tls_host.demo"],
                            capture_output=True, timeout=120)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "HTTP/1.1 200 OK" in out
    assert "Hello from the local HTTPS server" in out
    assert out.count("guest exited with status 0") == 2
    assert "client saw: server name localhost, alpn http/1.1, TLSv1.3" in out
    assert "  server name: localhost" in out and "  alpn: http/1.1" in out
    assert "  client certificate: sha256:" in out


def test_a_server_half_that_fails_leaves_no_guest_running(tmp_path, monkeypatch):
    """If the guest's banner cannot be read, the demo fails, and the guest
    it started is stopped rather than left listening."""
    stand_in = tmp_path / "wasi-tls-host"
    stand_in.write_text("#!/bin/sh\necho 'not a banner'\nexec sleep 60\n")
    stand_in.chmod(0o755)
    monkeypatch.setattr(demo, "installed_command", lambda: str(stand_in))
    started = []
    popen = subprocess.Popen

    def recording(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]
    monkeypatch.setattr(demo.subprocess, "Popen", recording)
    with pytest.raises((IndexError, ValueError)):  # no port in the banner
        demo.server_half(trustme.CA(), tmp_path / "demo-ca.pem")
    assert started and started[0].poll() is not None

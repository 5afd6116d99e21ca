"""`make demo` end to end: a guest fetches a page over HTTPS, a guest serves one."""

import subprocess
import sys


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

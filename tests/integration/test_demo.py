"""`make demo` end to end: the bundled guest fetches the page over HTTPS."""

import subprocess
import sys


def test_demo_prints_the_response(guests):
    result = subprocess.run([sys.executable, "-m", "wasi_tls_host.demo"],
                            capture_output=True, timeout=120)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "HTTP/1.1 200 OK" in out
    assert "Hello from the local HTTPS server" in out
    assert "guest exited with status 0" in out

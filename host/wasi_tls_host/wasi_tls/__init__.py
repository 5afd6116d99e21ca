"""wasi:tls — TLS client connections for guests, over the sans-IO core in tls/."""

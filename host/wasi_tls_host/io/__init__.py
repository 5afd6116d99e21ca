"""wasi:io — errors, pollables and byte streams."""

"""wasi:sockets — TCP, UDP and name lookup, denied unless the config allows."""

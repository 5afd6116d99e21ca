"""wasi:clocks — monotonic and wall clocks."""

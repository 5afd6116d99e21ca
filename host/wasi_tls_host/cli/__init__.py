"""wasi:cli — arguments, environment, exit, stdio and terminals."""

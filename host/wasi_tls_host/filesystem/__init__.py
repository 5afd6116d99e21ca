"""wasi:filesystem — descriptors sandboxed beneath the preopened directories."""

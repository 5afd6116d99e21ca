"""wasi:random — secure and insecure randomness (injectable for tests)."""

"""Fuzz and stateful tests (a package, so that its conftest is not imported as `conftest`)."""

"""Shared fixtures live in tests/fixtures/ as plugins, one module per real dependency."""

pytest_plugins: list[str] = ["tests.fixtures.database", "tests.fixtures.cluster"]

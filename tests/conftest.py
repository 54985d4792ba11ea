"""Shared fixtures live in tests/fixtures/ as plugins, one module per real dependency, beside
the helpers several test packages use (ports for the servers tests start, waiting for RBAC)."""

pytest_plugins: list[str] = ["tests.fixtures.database", "tests.fixtures.cluster"]

"""Shared fixtures live in tests/fixtures/ as plugins, one module per real dependency, beside
the helpers several test packages use (ports for the servers tests start, waiting for RBAC), and
the gate a task waits at until its test opens it."""

pytest_plugins: list[str] = [
    "tests.fixtures.database",
    "tests.fixtures.cluster",
    "tests.fixtures.gate",
]

"""Root pytest configuration: every suite (service, clients, e2e) shares the fixtures."""

pytest_plugins = ["tests.fixtures"]

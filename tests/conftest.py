"""The kernel's testing kit is a pytest plugin: fixtures ``system``, ``real_system``."""

pytest_plugins = ["supervision.testing"]

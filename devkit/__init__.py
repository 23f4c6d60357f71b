"""What the test suite and the benchmarks share: bounded waiting, free loopback ports, a private Mosquitto.

Not shipped (``pyproject.toml`` packages only config, alerts, sensors, simulator and api), like ``tests/`` and
``bench/``; both of those import it, neither imports the other.
"""

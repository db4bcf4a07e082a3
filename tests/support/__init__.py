"""What the tests share, each thing once: ports, waiting, private services and processes,
the fault proxy, and the fixtures that tests/conftest.py registers as plugins.

Nothing here is a test, and no test imports another test module: what two tests share
lives here. The benches import `ports`, `netfaults` and `private_services` too, so those
three need nothing but the standard library and gridwatch (no pytest).
"""

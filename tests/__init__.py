"""gridwatch's tests. A package so that `tests.support` has one importable name, for the
tests' plugins (`pytest_plugins` in conftest.py) and for the benches alike."""

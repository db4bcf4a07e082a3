"""Fault scenarios: a private broker behind a fault proxy, gridwatch's own processes, and the
checks every scenario ends with (`tests.faults.harness`)."""

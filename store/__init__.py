"""PostgreSQL/TimescaleDB: migrations, mode detection, writes and queries."""

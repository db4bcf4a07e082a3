"""MQTT ingest: one parser per message kind, a batching writer, dead letters."""

"""Inactivity alert rules for residents who live alone (pure functions of history and clock)."""

"""gridwatch: community grid governance from MQTT to map."""

__version__ = "0.1.0"

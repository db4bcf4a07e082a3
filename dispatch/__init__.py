"""The `gridwatch alerts` process: the alert engine and the case clocks run against the store,
and what they decide is delivered (MQTT, webhooks)."""

"""HTTP API: GeoJSON layers, check-ins, hazards, alerts."""

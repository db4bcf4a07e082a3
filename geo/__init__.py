"""Grids, hierarchy, point-to-grid assignment and coordinate systems; pure, no I/O to services."""

"""Files as district offices keep them (grid layers, residents and workers tables) and their
way into the database."""

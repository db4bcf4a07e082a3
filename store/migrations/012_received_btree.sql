-- The alert engine asks each few seconds for what arrived since its last look: a thin slice
-- at the newest end of received_at. The BRIN indexes of 004 answer that only for ranges that
-- VACUUM has summarised; a partition never vacuumed (autovacuum off, or not yet run on a
-- busy day) is read whole on every poll, and a week of a district's readings made each look
-- take about a second. A b-tree finds the slice in a few page reads in every partition and
-- chunk, and gives the planner the real newest value at the end of its statistics. Its cost
-- at ingest is small: received_at only grows, so each insert lands on the rightmost page.

DROP INDEX IF EXISTS meter_readings_received_idx;
DROP INDEX IF EXISTS sensor_events_received_idx;
DROP INDEX IF EXISTS patrol_checkins_received_idx;
CREATE INDEX meter_readings_received_idx ON meter_readings (received_at);
CREATE INDEX sensor_events_received_idx ON sensor_events (received_at);
CREATE INDEX patrol_checkins_received_idx ON patrol_checkins (received_at);

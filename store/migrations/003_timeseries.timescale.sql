-- TimescaleDB: hypertables in daily chunks, an hourly continuous aggregate of meter use
-- (local hours of the zone recorded at migration, as on plain PostgreSQL),
-- compression after 7 days and retention. The compression calls are the 2.x names that
-- newer releases keep as aliases of the columnstore API, so one file serves every 2.x.

SELECT create_hypertable('meter_readings', 'observed_at',
    chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
SELECT create_hypertable('sensor_events', 'observed_at',
    chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
SELECT create_hypertable('patrol_checkins', 'observed_at',
    chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);

CREATE MATERIALIZED VIEW meter_hourly WITH (timescaledb.continuous) AS
SELECT meter_id,
       time_bucket(INTERVAL '1 hour', observed_at, '{tz}') AS bucket,
       count(*) AS readings,
       avg(power_w) AS power_w_avg,
       max(power_w) AS power_w_max,
       min(energy_kwh) AS energy_kwh_min,
       max(energy_kwh) AS energy_kwh_max,
       min(water_l) AS water_l_min,
       max(water_l) AS water_l_max
FROM meter_readings
GROUP BY meter_id, time_bucket(INTERVAL '1 hour', observed_at, '{tz}')
WITH NO DATA;

SELECT add_continuous_aggregate_policy('meter_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');

ALTER TABLE meter_readings SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'meter_id', timescaledb.compress_orderby = 'observed_at DESC');
ALTER TABLE sensor_events SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'observed_at DESC');
ALTER TABLE patrol_checkins SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'worker_id', timescaledb.compress_orderby = 'observed_at DESC');
SELECT add_compression_policy('meter_readings', INTERVAL '7 days');
SELECT add_compression_policy('sensor_events', INTERVAL '7 days');
SELECT add_compression_policy('patrol_checkins', INTERVAL '7 days');

SELECT add_retention_policy('meter_readings', INTERVAL '{retention_days} days');
SELECT add_retention_policy('sensor_events', INTERVAL '{retention_days} days');
SELECT add_retention_policy('patrol_checkins', INTERVAL '{retention_days} days');

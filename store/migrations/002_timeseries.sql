-- Time series. Every row keeps the device's time (observed_at) and ours (received_at);
-- the primary key is the dedupe key, so a redelivered message is stored once.
-- {partition_by} is "PARTITION BY RANGE (observed_at)" on plain PostgreSQL (daily
-- partitions are made ahead by gridwatch) and empty on TimescaleDB (003 makes hypertables).

CREATE TABLE meter_readings (
    meter_id    text NOT NULL,
    observed_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    power_w     double precision,
    energy_kwh  double precision,
    water_l     double precision,
    PRIMARY KEY (meter_id, observed_at)
) {partition_by};

CREATE TABLE sensor_events (
    device_id   text NOT NULL,
    observed_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    event       text NOT NULL,
    value       double precision,
    PRIMARY KEY (device_id, observed_at, event)
) {partition_by};

CREATE TABLE patrol_checkins (
    worker_id   text NOT NULL,
    observed_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    source      text NOT NULL DEFAULT 'gw',
    lon         double precision NOT NULL,
    lat         double precision NOT NULL,
    accuracy_m  double precision,
    grid_id     bigint REFERENCES grids (id) ON DELETE SET NULL,
    kind        text NOT NULL DEFAULT 'patrol',
    resident_id text,
    status      text,
    note        text,
    device      text,
    battery     double precision,
    PRIMARY KEY (worker_id, source, observed_at)
) {partition_by};
CREATE INDEX patrol_checkins_grid_idx ON patrol_checkins (grid_id, observed_at);
CREATE INDEX patrol_checkins_resident_idx ON patrol_checkins (resident_id, observed_at)
    WHERE resident_id IS NOT NULL;

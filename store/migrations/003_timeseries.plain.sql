-- Plain PostgreSQL: an hourly rollup table with the same shape as TimescaleDB's continuous
-- aggregate, refreshed by gridwatch (store.rollups.refresh_meter_hourly).

CREATE TABLE meter_hourly (
    meter_id       text NOT NULL,
    bucket         timestamptz NOT NULL,
    readings       bigint NOT NULL,
    power_w_avg    double precision,
    power_w_max    double precision,
    energy_kwh_min double precision,
    energy_kwh_max double precision,
    water_l_min    double precision,
    water_l_max    double precision,
    PRIMARY KEY (meter_id, bucket)
);

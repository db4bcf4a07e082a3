-- The grid hierarchy, the people and devices in it, and what the services keep besides
-- time series. Geometry is WKB (WGS-84) plus its bounding box: spatial work is shapely in
-- the process, so PostGIS is not needed.

CREATE TABLE gridwatch_meta (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE grids (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code       text NOT NULL UNIQUE,
    name       text NOT NULL,
    level      text NOT NULL CHECK (level IN ('district', 'street', 'community', 'grid')),
    parent_id  bigint REFERENCES grids (id) ON DELETE SET NULL,
    geometry   bytea NOT NULL,
    min_lon    double precision NOT NULL,
    min_lat    double precision NOT NULL,
    max_lon    double precision NOT NULL,
    max_lat    double precision NOT NULL,
    area_m2    double precision NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grids_parent_idx ON grids (parent_id);
CREATE INDEX grids_level_idx ON grids (level);

CREATE TABLE workers (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    phone      text,
    grid_id    bigint REFERENCES grids (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE residents (
    id           text PRIMARY KEY,
    name         text,
    address      text,
    phone        text,
    lat          double precision,
    lon          double precision,
    grid_id      bigint REFERENCES grids (id) ON DELETE SET NULL,
    living_alone boolean NOT NULL DEFAULT true,
    rules        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX residents_grid_idx ON residents (grid_id);

CREATE TABLE devices (
    kind        text NOT NULL CHECK (kind IN ('meter', 'sensor')),
    id          text NOT NULL,
    resident_id text REFERENCES residents (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
);
CREATE INDEX devices_resident_idx ON devices (resident_id);

CREATE TABLE hazard_reports (
    id          uuid PRIMARY KEY,
    reporter_id text NOT NULL,
    observed_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    lon         double precision NOT NULL,
    lat         double precision NOT NULL,
    grid_id     bigint REFERENCES grids (id) ON DELETE SET NULL,
    category    text NOT NULL,
    severity    text NOT NULL,
    description text NOT NULL DEFAULT '',
    photo_urls  text[] NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'reported'
        CHECK (status IN ('reported', 'assigned', 'in_progress', 'resolved', 'closed', 'reopened')),
    level       text NOT NULL DEFAULT 'grid',
    assignee    text,
    deadline_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hazard_reports_grid_idx ON hazard_reports (grid_id, status);
CREATE INDEX hazard_reports_observed_idx ON hazard_reports (observed_at);

CREATE TABLE hazard_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hazard_id   uuid NOT NULL REFERENCES hazard_reports (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    actor       text,
    note        text,
    photo_urls  text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX hazard_events_hazard_idx ON hazard_events (hazard_id, at);

CREATE TABLE absences (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resident_id text NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    note        text,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX absences_resident_idx ON absences (resident_id, ends_at);

CREATE TABLE alerts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resident_id text REFERENCES residents (id) ON DELETE SET NULL,
    kind        text NOT NULL,
    grid_id     bigint REFERENCES grids (id) ON DELETE SET NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    severity    text NOT NULL DEFAULT 'high',
    level       text NOT NULL DEFAULT 'grid',
    since       timestamptz NOT NULL,
    opened_at   timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    resolution  text
);
-- One open alert per resident and condition: the engine can never open a second one.
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (resident_id, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_grid_idx ON alerts (grid_id, status);

CREATE TABLE alert_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL DEFAULT now(),
    action   text NOT NULL,
    actor    text,
    note     text
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, at);

-- A payload that could not be stored, kept with why. A redelivered or repeated identical
-- message on the same topic is one row with a count, so a crash or a chattering device
-- never doubles or floods it.
CREATE TABLE dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic            text NOT NULL,
    payload          bytea NOT NULL,
    payload_sha256   bytea NOT NULL,
    reason           text NOT NULL,
    received_at      timestamptz NOT NULL,
    last_received_at timestamptz NOT NULL,
    occurrences      integer NOT NULL DEFAULT 1,
    UNIQUE (topic, payload_sha256)
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);

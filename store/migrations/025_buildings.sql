-- Below the grid: buildings (楼栋) and their units (单元), and the people a grid worker calls
-- first about a home there — unit heads (单元长) and building leads (楼栋长). Points keep their
-- grid_id as before; a home (and a case's point, when it is read) is placed in its building.

-- A building's shape, imported as grids are (`gridwatch grids import --level building`), in
-- the grid that holds it. Not in `grids`: everything that walks the grid hierarchy (point
-- placement, coverage, the desk, the maps) stays as it is, at the grid.
CREATE TABLE buildings (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code       text NOT NULL UNIQUE,
    name       text NOT NULL,
    grid_id    bigint NOT NULL REFERENCES grids (id),
    geometry   bytea NOT NULL,
    min_lon    double precision NOT NULL,
    min_lat    double precision NOT NULL,
    max_lon    double precision NOT NULL,
    max_lat    double precision NOT NULL,
    area_m2    double precision NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX buildings_grid_idx ON buildings (grid_id);
CREATE INDEX buildings_box_idx ON buildings (min_lon, max_lon, min_lat, max_lat);

-- A unit of a building: its code is the building's own numbering ("1", "2单元"), so a unit is
-- named by building and unit code together; a point (its door) or only an address.
CREATE TABLE units (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    building_id bigint NOT NULL REFERENCES buildings (id) ON DELETE CASCADE,
    code        text NOT NULL,
    name        text NOT NULL,
    address     text NOT NULL DEFAULT '',
    lon         double precision,
    lat         double precision,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (building_id, code),
    CHECK ((lon IS NULL) = (lat IS NULL))
);

ALTER TABLE residents
    ADD COLUMN building_id bigint REFERENCES buildings (id) ON DELETE SET NULL,
    ADD COLUMN unit_id bigint REFERENCES units (id) ON DELETE SET NULL;
CREATE INDEX residents_building_idx ON residents (building_id) WHERE building_id IS NOT NULL;

-- Unit heads and building leads: names and phones are personal information (masked, reads in
-- clear audited as contact:<id>, forgotten with `gridwatch contacts forget`). A contact with a
-- webhook_url receives the notifications of the cases in their building.
CREATE TABLE contacts (
    id           text PRIMARY KEY,
    name         text,
    role         text NOT NULL CHECK (role IN ('unit_head', 'building_lead')),
    building_id  bigint NOT NULL REFERENCES buildings (id),
    unit_id      bigint REFERENCES units (id) ON DELETE SET NULL,
    phone        text,
    webhook_url  text,
    forgotten_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_building_idx ON contacts (building_id);
CREATE INDEX contacts_webhook_idx ON contacts (building_id) WHERE webhook_url IS NOT NULL;

-- A case's steps reach its building's contacts the way alert changes reach webhooks: a step
-- stored (through any door: MQTT, HTTP, the case clocks) queues a notice in its transaction,
-- only while some contact has a webhook; `gridwatch alerts` places the case's point in its
-- building and writes one outbox row per step for the contacts' URLs, which its delivery
-- posts (retried, with an Idempotency-Key) as it posts alert changes.
CREATE TABLE case_notices (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_kind  text NOT NULL CHECK (case_kind IN ('hazard', 'request')),
    event_id   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION gridwatch_queue_case_notices() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM contacts WHERE webhook_url IS NOT NULL) THEN
        INSERT INTO case_notices (case_kind, event_id)
        SELECT TG_ARGV[0], id FROM new_steps ORDER BY id;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS hazard_events_case_notices ON hazard_events;
CREATE TRIGGER hazard_events_case_notices AFTER INSERT ON hazard_events
    REFERENCING NEW TABLE AS new_steps
    FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_queue_case_notices('hazard');
DROP TRIGGER IF EXISTS request_events_case_notices ON request_events;
CREATE TRIGGER request_events_case_notices AFTER INSERT ON request_events
    REFERENCING NEW TABLE AS new_steps
    FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_queue_case_notices('request');

-- The outbox takes a third subject: a case's step, sent to webhooks only (published_at is
-- set when it is written: nothing of it goes to MQTT).
ALTER TABLE alert_outbox
    ADD COLUMN case_kind text,
    ADD COLUMN case_event_id bigint,
    DROP CONSTRAINT alert_outbox_one_subject,
    ADD CONSTRAINT alert_outbox_one_subject CHECK (
        (alert_id IS NOT NULL AND event_id IS NOT NULL AND warning_id IS NULL
            AND case_event_id IS NULL)
        OR (alert_id IS NULL AND event_id IS NULL AND warning_id IS NOT NULL
            AND case_event_id IS NULL)
        OR (alert_id IS NULL AND event_id IS NULL AND warning_id IS NULL
            AND case_kind IS NOT NULL AND case_event_id IS NOT NULL)
    );

-- The API keeps what it derives from these (the grids layer's counts) until a notice (023).
SELECT gridwatch_watch_changes('buildings', 'units', 'contacts');

-- Places a community inspects on a schedule (安全巡查: shops, restaurants, small workshops and
-- warehouses): the register, each place's inspection clock, and where an overdue inspection
-- stands. An inspection is a patrol check-in of kind 'inspection' naming the place; each
-- finding opens a hazard tied to the place, with the deadline its severity sets (限期整改).
CREATE TABLE places (
    id                 text PRIMARY KEY,
    name               text NOT NULL,
    kind               text NOT NULL
        CHECK (kind IN ('shop', 'restaurant', 'workshop', 'warehouse', 'other')),
    address            text NOT NULL DEFAULT '',
    lon                double precision,
    lat                double precision,
    grid_id            bigint REFERENCES grids (id) ON DELETE SET NULL,
    police_grid_id     bigint REFERENCES grids (id) ON DELETE SET NULL,  -- its 警格 (024)
    contact            text,  -- the person responsible (负责人): masked, reads in clear audited
    phone              text,
    inspect_every_days integer NOT NULL CHECK (inspect_every_days BETWEEN 1 AND 3660),
    registered_at      timestamptz NOT NULL,  -- first imported: the clock of a place never inspected
    last_inspected_at  timestamptz,
    next_due_at        timestamptz NOT NULL,  -- last inspection (or registration) + the period
    level              text NOT NULL DEFAULT 'grid',  -- an overdue inspection goes up a level
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((lon IS NULL) = (lat IS NULL))
);
CREATE INDEX places_grid_idx ON places (grid_id);
CREATE INDEX places_police_grid_idx ON places (police_grid_id) WHERE police_grid_id IS NOT NULL;
CREATE INDEX places_due_idx ON places (next_due_at);

-- What happened to a place's inspection clock besides inspections (those are check-ins):
-- escalations of an overdue inspection, by `gridwatch alerts`.
CREATE TABLE place_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    place_id   text NOT NULL REFERENCES places (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL,
    action     text NOT NULL,
    from_level text,
    to_level   text,
    actor      text,
    note       text
);
CREATE INDEX place_events_place_idx ON place_events (place_id, at);

-- A finding of an inspection is a hazard of its place; the place has open findings until
-- every such hazard is closed.
ALTER TABLE hazard_reports ADD COLUMN place_id text REFERENCES places (id) ON DELETE SET NULL;
CREATE INDEX hazard_reports_place_idx ON hazard_reports (place_id, status)
    WHERE place_id IS NOT NULL;

-- An inspection check-in names its place and what it found ('ok' or 'findings'): nullable
-- columns, which TimescaleDB adds to a compressed hypertable too (one per statement).
ALTER TABLE patrol_checkins ADD COLUMN place_id text;
ALTER TABLE patrol_checkins ADD COLUMN result text;

-- The tables named notify on gridwatch_changes as 016's do (a statement trigger each, made
-- again when a migration runs twice): the migrations from here on watch a table through this.
CREATE OR REPLACE FUNCTION gridwatch_watch_changes(VARIADIC tables text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    watched text;
BEGIN
    FOREACH watched IN ARRAY tables
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', watched || '_notify_change', watched);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_notify_change()',
            watched || '_notify_change', watched);
    END LOOP;
END
$$;

-- The API keeps what it derives from places (the desk's overdue inspections) until a notice.
SELECT gridwatch_watch_changes('places');

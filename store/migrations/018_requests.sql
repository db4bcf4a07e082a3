-- Citizens' requests (诉求): Open311 posts, 12345 work orders, needs recorded on home visits,
-- the app's. Each change is a request_events row in the same transaction, as for hazards.
-- A request without a point keeps its address; one that cannot be placed in a grid waits in
-- its street's 待分拨 queue: grid_id is then the street's, status 'received', level 'street'.
CREATE TABLE requests (
    id               uuid PRIMARY KEY,
    source           text NOT NULL CHECK (source IN ('open311', 'hotline', 'visit', 'app')),
    source_key       text,  -- the source's own number (工单编号): a later export updates it
    service_code     text NOT NULL,
    description      text NOT NULL,
    lon              double precision,
    lat              double precision,
    address          text,
    grid_id          bigint REFERENCES grids (id) ON DELETE SET NULL,
    requester_name   text,  -- personal information: masked, and every read in clear audited
    requester_phone  text,
    requester_email  text,
    media_urls       text[] NOT NULL DEFAULT '{}',
    attributes       jsonb NOT NULL DEFAULT '{}',
    reporter         text NOT NULL,  -- who entered it: a token's user, an import, a worker
    requested_at     timestamptz NOT NULL,  -- when the person asked (来电时间)
    received_at      timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'dispatched',
                         'accepted', 'in_progress', 'resolved', 'feedback', 'closed', 'reopened')),
    level            text NOT NULL DEFAULT 'grid',
    assignee         text,
    accept_by        timestamptz NOT NULL,  -- to be accepted (接单) by
    due_at           timestamptz NOT NULL,  -- to be resolved (办结) by: 限期, kept by escalation
    deadline_at      timestamptz NOT NULL,  -- when it goes up a level if still open
    rating           text CHECK (rating IN ('satisfied', 'basically_satisfied', 'unsatisfied')),
    updated_at       timestamptz NOT NULL,
    CHECK ((lon IS NULL) = (lat IS NULL)),
    UNIQUE (source, source_key)
);
CREATE INDEX requests_grid_idx ON requests (grid_id, status);
CREATE INDEX requests_received_idx ON requests (received_at, id);
CREATE INDEX requests_open_deadline_idx ON requests (deadline_at)
    WHERE status IN ('received', 'dispatched', 'accepted', 'in_progress', 'reopened');

CREATE TABLE request_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  uuid NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    action      text NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    actor       text,
    note        text,
    photo_urls  text[] NOT NULL DEFAULT '{}',
    rating      text,
    level       text
);
CREATE INDEX request_events_request_idx ON request_events (request_id, at);

-- The API keeps what it derives from these tables until a change notice comes (016).
DO $$
DECLARE
    watched text;
BEGIN
    FOREACH watched IN ARRAY ARRAY['requests', 'request_events']
    LOOP
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_notify_change()',
            watched || '_notify_change', watched);
    END LOOP;
END
$$;

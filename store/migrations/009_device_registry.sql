-- Devices that hold broker credentials. Patrol and hazard-reporting apps join meters and
-- sensors; an app speaks for a worker id, which is its topic identity and broker user
-- (gw/patrol/{worker}, gw/hazard/{worker}, owntracks/{worker}/+). A revoked device keeps its
-- row and its history, and may no longer publish.

ALTER TABLE devices DROP CONSTRAINT devices_kind_check;
ALTER TABLE devices ADD CONSTRAINT devices_kind_check CHECK (kind IN ('meter', 'sensor', 'app'));

ALTER TABLE devices
    ADD COLUMN worker_id text,
    ADD COLUMN credentials_issued_at timestamptz,
    ADD COLUMN revoked_at timestamptz,
    -- The name the device logs in to the broker with, which the ACL patterns (%u) match
    -- against the topic: its own id, or for an app the worker it speaks for.
    ADD COLUMN broker_user text GENERATED ALWAYS AS (coalesce(worker_id, id)) STORED,
    ADD CONSTRAINT devices_owner_check CHECK (
        CASE WHEN kind = 'app' THEN worker_id IS NOT NULL AND resident_id IS NULL
             ELSE worker_id IS NULL END
    );

CREATE INDEX devices_broker_user_idx ON devices (broker_user);
-- One broker user holds one password: a worker's second phone replaces the first (revoke it).
CREATE UNIQUE INDEX devices_one_app_per_worker ON devices (worker_id)
    WHERE kind = 'app' AND revoked_at IS NULL;

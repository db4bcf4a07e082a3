-- Photos posted with a hazard report, a case's step or a patrol check-in (multipart/form-data):
-- the image and its thumbnail are kept in the media store (a folder or an S3 bucket) under
-- keys made from the id; this row says what the photo is and what it belongs to. Whoever may
-- see that hazard, request or check-in may see the photo; nobody else.
CREATE TABLE media (
    id                  uuid PRIMARY KEY,
    content_type        text NOT NULL
                            CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
    bytes               integer NOT NULL CHECK (bytes > 0),  -- the kept image, re-encoded
    thumb_bytes         integer NOT NULL CHECK (thumb_bytes > 0),  -- its JPEG thumbnail
    sent_bytes          integer NOT NULL,  -- the file as the client sent it
    width               integer NOT NULL,
    height              integer NOT NULL,
    sha256              text NOT NULL,  -- of the kept image (hex)
    uploaded_by         text NOT NULL,  -- the token's user
    uploaded_at         timestamptz NOT NULL,
    step                text NOT NULL CHECK (step IN ('report', 'resolve', 'checkin')),
    hazard_id           uuid REFERENCES hazard_reports (id) ON DELETE CASCADE,
    request_id          uuid REFERENCES requests (id) ON DELETE CASCADE,
    -- A check-in's key (patrol_checkins is partitioned, so no foreign key): worker, source, time.
    checkin_worker_id   text,
    checkin_source      text,
    checkin_observed_at timestamptz,
    -- The resident a visit's photos were taken at: forgetting the resident removes them, also
    -- after the visit itself no longer names the resident.
    resident_id         text,
    grid_id             bigint REFERENCES grids (id) ON DELETE SET NULL,  -- where, when posted
    CHECK (num_nonnulls(hazard_id, request_id, checkin_observed_at) = 1),
    CHECK ((checkin_observed_at IS NULL) = (checkin_worker_id IS NULL)
           AND (checkin_observed_at IS NULL) = (checkin_source IS NULL)),
    CHECK ((step = 'checkin') = (checkin_observed_at IS NOT NULL))
);
CREATE INDEX media_hazard_idx ON media (hazard_id) WHERE hazard_id IS NOT NULL;
CREATE INDEX media_request_idx ON media (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX media_checkin_idx ON media (checkin_worker_id, checkin_observed_at)
    WHERE checkin_observed_at IS NOT NULL;
CREATE INDEX media_resident_idx ON media (resident_id) WHERE resident_id IS NOT NULL;

-- Check-ins carry photo links as hazards do (MQTT and HTTP alike): NULL when none.
ALTER TABLE patrol_checkins ADD COLUMN photo_urls text[];

-- What the alert engine has learned of each home's days (see alerts/profile.py): the time of
-- the first sign of life of recent mornings and the length of recent quiet spells, kept so
-- that a restart does not forget that Mrs Wang gets up at half past ten.

CREATE TABLE home_profiles (
    resident_id      text PRIMARY KEY REFERENCES residents (id) ON DELETE CASCADE,
    first_activity_s integer[] NOT NULL DEFAULT '{}',
    quiet_s          integer[] NOT NULL DEFAULT '{}',
    last_seen        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

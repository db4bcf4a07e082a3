-- The HTTP API's own tables: users with bearer tokens (only a SHA-256 of each token is
-- kept), the grids each user may see, browser sessions for the map pages; and indexes for
-- the hazard ledger and the live alert stream.

CREATE TABLE api_users (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'duty_officer', 'grid_worker', 'device')),
    level        text CHECK (level IN ('street', 'community')),
    token_sha256 bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
-- A name is taken while its user is active; a revoked user's name may be given again.
CREATE UNIQUE INDEX api_users_active_name_idx ON api_users (name) WHERE revoked_at IS NULL;

-- The grids a user is responsible for; they see these and everything under them. A user
-- with no rows here sees every grid (admin, district-wide duty officer).
CREATE TABLE api_user_grids (
    user_id bigint NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,
    grid_id bigint NOT NULL REFERENCES grids (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, grid_id)
);

CREATE TABLE api_sessions (
    id_sha256  bytea PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX api_sessions_expires_idx ON api_sessions (expires_at);

-- The ledger asks for open hazards by level and deadline; the escalation job for open
-- hazards whose deadline has passed.
CREATE INDEX hazard_reports_open_deadline_idx ON hazard_reports (deadline_at)
    WHERE status IN ('reported', 'assigned', 'in_progress', 'reopened');
CREATE INDEX hazard_reports_received_idx ON hazard_reports (received_at, id);
CREATE INDEX alerts_opened_idx ON alerts (opened_at);

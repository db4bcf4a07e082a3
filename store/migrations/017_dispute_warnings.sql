-- Early warning of disputes (矛盾纠纷预警). A keyword library is imported whole, as a new
-- version that replaces the active one in the same transaction; old versions stay, as the
-- warnings they made name them. Without any, the starter library shipped with gridwatch is
-- in use.
CREATE TABLE keyword_libraries (
    version     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL,
    imported_by text,
    imported_at timestamptz NOT NULL DEFAULT now(),
    active      boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX keyword_libraries_one_active_idx ON keyword_libraries (active) WHERE active;

CREATE TABLE keyword_entries (
    version  integer NOT NULL REFERENCES keyword_libraries (version) ON DELETE CASCADE,
    position integer NOT NULL,
    category text NOT NULL CHECK (category <> ''),
    keyword  text NOT NULL CHECK (keyword <> ''),
    weight   double precision NOT NULL DEFAULT 1 CHECK (weight > 0),
    PRIMARY KEY (version, position)
);

-- One warning per category a text hits; a text scanned again (a redelivered message) makes
-- none. No text is copied here: the note stays where it is, with its own access rules.
CREATE TABLE warnings (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          text NOT NULL CHECK (source IN ('request', 'checkin', 'hazard')),
    source_id       text NOT NULL,
    category        text NOT NULL,
    level           smallint NOT NULL CHECK (level IN (1, 2)),
    reason          text CHECK (reason IN ('repeated', 'lives_alone')),
    keywords        text[] NOT NULL,
    weight          double precision NOT NULL,
    library_version integer REFERENCES keyword_libraries (version) ON DELETE SET NULL,
    grid_id         bigint REFERENCES grids (id) ON DELETE SET NULL,
    resident_id     text REFERENCES residents (id) ON DELETE SET NULL,
    lives_alone     boolean NOT NULL DEFAULT false,
    lon             double precision,
    lat             double precision,
    observed_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_id, category),
    CHECK ((level = 2) = (reason IS NOT NULL))
);
CREATE INDEX warnings_grid_category_idx ON warnings (grid_id, category, observed_at);

-- A level-2 warning goes out the way alert changes do: on gw/alerts/{grid} and to every
-- webhook, from the same outbox, by the same delivery loop.
ALTER TABLE alert_outbox
    ALTER COLUMN alert_id DROP NOT NULL,
    ALTER COLUMN event_id DROP NOT NULL,
    ADD COLUMN warning_id bigint REFERENCES warnings (id) ON DELETE CASCADE,
    ADD CONSTRAINT alert_outbox_one_subject CHECK (
        (alert_id IS NOT NULL AND event_id IS NOT NULL AND warning_id IS NULL)
        OR (alert_id IS NULL AND event_id IS NULL AND warning_id IS NOT NULL)
    );

-- A second grid system over the same district: the police's grids (警格: 分局, 派出所, 警务区,
-- 警格, at the four levels the management grids use) cut the streets differently from the
-- management grids (网格). Each grid says its system; a parent is of its child's system, and a
-- code names one grid whatever its system (users, workers, alerts and maps name grids by code).
ALTER TABLE grids
    ADD COLUMN system text NOT NULL DEFAULT 'management'
        CHECK (system IN ('management', 'police'));
CREATE INDEX grids_system_idx ON grids (system);

-- Every stored point is placed in a grid of each system. Why a column per table and not a
-- generic (point, system, grid) table: there are two systems in practice (两网融合), and a
-- point's police grid is then read, filtered and indexed exactly as its grid_id is, in the
-- same row, with no join on the time-series tables' composite keys; a third system would
-- be a migration either way. grid_id stays the management grid, so everything that knows
-- only it goes on as before. An alert has no column: it is where its resident lives
-- (residents.police_grid_id), as its grid_id follows the resident's (015).
ALTER TABLE residents ADD COLUMN police_grid_id bigint REFERENCES grids (id) ON DELETE SET NULL;
ALTER TABLE hazard_reports
    ADD COLUMN police_grid_id bigint REFERENCES grids (id) ON DELETE SET NULL;
ALTER TABLE requests ADD COLUMN police_grid_id bigint REFERENCES grids (id) ON DELETE SET NULL;
ALTER TABLE warnings ADD COLUMN police_grid_id bigint REFERENCES grids (id) ON DELETE SET NULL;
-- No foreign key here: on TimescaleDB patrol_checkins is a hypertable with compression on, to
-- which a column with a constraint cannot be added. gridwatch never deletes a grid (an
-- import updates it by code), so the reference cannot dangle.
ALTER TABLE patrol_checkins ADD COLUMN police_grid_id bigint;

-- Partial: a district without a police layer stores NULL there and pays nothing per row.
CREATE INDEX residents_police_grid_idx ON residents (police_grid_id)
    WHERE police_grid_id IS NOT NULL;
CREATE INDEX hazard_reports_police_grid_idx ON hazard_reports (police_grid_id, status)
    WHERE police_grid_id IS NOT NULL;
CREATE INDEX requests_police_grid_idx ON requests (police_grid_id, status)
    WHERE police_grid_id IS NOT NULL;
CREATE INDEX warnings_police_grid_idx ON warnings (police_grid_id, category, observed_at)
    WHERE police_grid_id IS NOT NULL;

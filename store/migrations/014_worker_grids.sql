-- A grid worker may be responsible for several grids (负责网格): one row per worker and grid.
-- workers.grid_id stays as the worker's first grid, for readers that want one.
CREATE TABLE worker_grids (
    worker_id text NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    grid_id   bigint NOT NULL REFERENCES grids (id) ON DELETE CASCADE,
    PRIMARY KEY (worker_id, grid_id)
);
CREATE INDEX worker_grids_grid_idx ON worker_grids (grid_id);

INSERT INTO worker_grids (worker_id, grid_id)
SELECT id, grid_id FROM workers WHERE grid_id IS NOT NULL;

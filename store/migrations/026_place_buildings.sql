-- A place of the inspection register (023) stands in a building (楼栋) and unit (单元) of 025
-- as a home does: the ones its row names, else the building its point lies in. The cases its
-- inspections' findings open reach the people to call first there (单元长, 楼栋长).
ALTER TABLE places
    ADD COLUMN building_id bigint REFERENCES buildings (id) ON DELETE SET NULL,
    ADD COLUMN unit_id bigint REFERENCES units (id) ON DELETE SET NULL;
CREATE INDEX places_building_idx ON places (building_id)
    WHERE building_id IS NOT NULL;

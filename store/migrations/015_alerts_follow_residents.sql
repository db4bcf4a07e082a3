-- An alert is about a resident and is handled where they live now: when a re-import moves a
-- resident to another grid, their alerts (open and past) go with them, so that the new grid's
-- people see them and the old grid's no longer read the resident's new address and phone.
-- A trigger, so that every way a resident's grid changes is covered, the CLI's and a
-- person's UPDATE alike.

UPDATE alerts a SET grid_id = r.grid_id
FROM residents r
WHERE r.id = a.resident_id AND a.grid_id IS DISTINCT FROM r.grid_id;

CREATE OR REPLACE FUNCTION alerts_follow_resident() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE alerts SET grid_id = NEW.grid_id
    WHERE resident_id = NEW.id AND grid_id IS DISTINCT FROM NEW.grid_id;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS residents_move_their_alerts ON residents;
CREATE TRIGGER residents_move_their_alerts
AFTER UPDATE OF grid_id ON residents
FOR EACH ROW WHEN (OLD.grid_id IS DISTINCT FROM NEW.grid_id)
EXECUTE FUNCTION alerts_follow_resident();

-- The duty desk counts homes whose meter was never heard from (devices, meter_readings): these
-- tables notify too, as 016's do. A statement trigger sends one notice per statement whatever
-- the number of rows, and PostgreSQL folds a transaction's identical notices into one, so a
-- batch of meter readings written by the ingest costs one notice, not one per reading.

DO $$
DECLARE
    watched text;
BEGIN
    FOREACH watched IN ARRAY ARRAY['devices', 'meter_readings']
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', watched || '_notify_change', watched);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_notify_change()',
            watched || '_notify_change', watched);
    END LOOP;
END
$$;

-- A notice on channel gridwatch_changes naming the table, sent when a transaction that wrote
-- to it commits (PostgreSQL sends notices only then, and one per table and transaction): the
-- API keeps what it derives from these tables (the grids layer's live counts) until one comes.
-- Statement triggers: one notice per statement whatever the number of rows, COPY included.

CREATE OR REPLACE FUNCTION gridwatch_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gridwatch_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

DO $$
DECLARE
    watched text;
BEGIN
    FOREACH watched IN ARRAY ARRAY['grids', 'residents', 'alerts', 'hazard_reports',
                                   'hazard_events', 'patrol_checkins']
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', watched || '_notify_change', watched);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_notify_change()',
            watched || '_notify_change', watched);
    END LOOP;
END
$$;

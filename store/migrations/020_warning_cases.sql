-- A level-2 dispute warning enters the problem ledger as a case with a deadline: a request of
-- source 'warning' (service 'dispute'), its source_key the warning's id, handled at the
-- community level and escalated by the request clocks like any other.
ALTER TABLE requests
    DROP CONSTRAINT requests_source_check,
    ADD CONSTRAINT requests_source_check
        CHECK (source IN ('open311', 'hotline', 'visit', 'app', 'warning'));

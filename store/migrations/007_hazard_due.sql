-- A hazard's due time (限期整改): when it must be handled by, set when it is reported (or
-- reopened). Escalation moves deadline_at, giving each level a fresh period, but never
-- due_at: a hazard that missed its due time stays overdue in the ledger after it goes up.
ALTER TABLE hazard_reports ADD COLUMN due_at timestamptz;
UPDATE hazard_reports SET due_at = deadline_at WHERE level = 'grid';
CREATE INDEX hazard_reports_open_due_idx ON hazard_reports (due_at)
    WHERE status IN ('reported', 'assigned', 'in_progress', 'reopened');

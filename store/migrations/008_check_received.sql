-- When a person's check reached the database, so the alert engine reads checks by arrival
-- like device data (a CLI or API host with a slow clock cannot hide one from it).

ALTER TABLE resident_checks ADD COLUMN received_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX resident_checks_received_idx ON resident_checks (received_at);

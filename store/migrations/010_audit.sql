-- Who saw which residents' personal information (names, phones, addresses in clear), and
-- who had a resident forgotten: one row per request or command, written in its transaction.
-- Kept as long as the law asks of processing records (PIPL: at least three years).

CREATE TABLE personal_data_audit (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    role         text,
    action       text NOT NULL CHECK (action IN ('read', 'forget')),
    what         text NOT NULL,
    client       text,
    resident_ids text[] NOT NULL CHECK (cardinality(resident_ids) > 0)
);
CREATE INDEX personal_data_audit_at_idx ON personal_data_audit (at);
CREATE INDEX personal_data_audit_actor_idx ON personal_data_audit (actor, at);
CREATE INDEX personal_data_audit_residents_idx ON personal_data_audit USING gin (resident_ids);

-- When a resident's personal information was removed (`gridwatch residents forget`); a new
-- import of the resident clears it.
ALTER TABLE residents ADD COLUMN forgotten_at timestamptz;

-- The alert engine's bookkeeping: who acknowledged and resolved what and when, checks made
-- by a person (they count as signs of life), and an outbox from which every alert state
-- change is published to MQTT and posted to webhooks, so none is lost when a receiver is
-- down. BRIN indexes on received_at let the engine read what arrived since its last look.

ALTER TABLE alerts
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text,
    ADD COLUMN resolved_at timestamptz,
    ADD COLUMN resolved_by text;
CREATE INDEX alerts_open_idx ON alerts (status) WHERE status <> 'resolved';
CREATE INDEX alerts_resident_idx ON alerts (resident_id, kind, resolved_at);

ALTER TABLE alert_events ADD COLUMN level text;

CREATE TABLE resident_checks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resident_id text NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    actor       text,
    note        text,
    alert_id    bigint REFERENCES alerts (id) ON DELETE SET NULL
);
CREATE INDEX resident_checks_resident_idx ON resident_checks (resident_id, at);

CREATE TABLE alert_outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id     bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    event_id     bigint NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    topic        text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX alert_outbox_unpublished_idx ON alert_outbox (id) WHERE published_at IS NULL;

CREATE TABLE webhook_deliveries (
    outbox_id       bigint NOT NULL REFERENCES alert_outbox (id) ON DELETE CASCADE,
    url             text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text,
    PRIMARY KEY (outbox_id, url)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL;

CREATE INDEX meter_readings_received_idx ON meter_readings USING brin (received_at);
CREATE INDEX sensor_events_received_idx ON sensor_events USING brin (received_at);
CREATE INDEX patrol_checkins_received_idx ON patrol_checkins USING brin (received_at);

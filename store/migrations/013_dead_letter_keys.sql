-- A dead letter must always be storable, whatever came in. The key (topic, payload_sha256)
-- held the topic itself, and a topic of a few thousand characters made its index entry
-- larger than a b-tree page allows: the insert failed and ingest held its batch for ever.
-- The key is now a digest of the topic as well; the topic and payload are kept whole.
-- redacted_at marks a dead letter whose payload was removed because it named a resident
-- who was forgotten (gridwatch residents forget).

ALTER TABLE dead_letters ADD COLUMN topic_sha256 bytea;
UPDATE dead_letters SET topic_sha256 = sha256(convert_to(topic, 'UTF8'));
ALTER TABLE dead_letters ALTER COLUMN topic_sha256 SET NOT NULL;
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_topic_payload_sha256_key;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_key UNIQUE (topic_sha256, payload_sha256);
ALTER TABLE dead_letters ADD COLUMN redacted_at timestamptz;

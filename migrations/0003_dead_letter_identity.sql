-- A dead letter is identified by its Kafka position *and* its content. Positions alone repeat:
-- when a topic's offsets start again (the local broker restarted on memory storage, a topic
-- recreated, a new cluster in front of the same database), a new malformed event at a reused
-- offset must become a new dead letter, not vanish into ON CONFLICT. A replay of the same message
-- (same position, same bytes) still finds the row it stored before.
-- Applied by `scen migrate` inside a transaction; do not add BEGIN/COMMIT here.
ALTER TABLE dead_letters ADD COLUMN raw_sha256 bytea;
UPDATE dead_letters SET raw_sha256 = sha256(raw);
ALTER TABLE dead_letters ALTER COLUMN raw_sha256 SET NOT NULL;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_raw_sha256_check CHECK (length(raw_sha256) = 32);
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_kafka_topic_kafka_partition_kafka_offset_key;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_position_content_key
    UNIQUE (kafka_topic, kafka_partition, kafka_offset, raw_sha256);

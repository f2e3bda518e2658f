-- 003_event_seq.sql - the last event id in a counter row instead of MAX(id) under an advisory
-- lock. Taking the next id (UPDATE ... RETURNING) locks the row until commit, so ids still
-- increase in commit order, and the id, the event and its NOTIFY are one statement: a writer
-- holds the lock for that statement and its COMMIT, one round trip to its client fewer than
-- the lock, the MAX(id) insert and the COMMIT took (under a burst, every other writer of an
-- event waits for those round trips).
-- Upgrading a fleet across this migration: stop the older nodes before starting newer ones.
-- An older node still takes MAX(id) + 1 without the counter, and one of the two then fails
-- its event's insert on the primary key.
CREATE TABLE event_seq (
  one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
  id  BIGINT  NOT NULL
);
INSERT INTO event_seq (id) SELECT COALESCE(MAX(id), 0) FROM events;

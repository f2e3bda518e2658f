-- 003_event_seq.sql - nothing to change in SQLite: its one write lock already orders events by
-- commit (INTEGER PRIMARY KEY ids are taken inside it). PostgreSQL's 003 moves the event id to
-- a counter row; this one keeps the two dialects at the same schema version.
SELECT 1;

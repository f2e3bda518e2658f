-- 001_init.sql - the catalog and the queue, PostgreSQL dialect of sqlite/001_init.sql: the same
-- tables, columns and indexes. Times are integer microseconds since the epoch, UTC.
-- Differences, each where it must: ids, keys, usernames and labels are COLLATE "C", so keyset
-- pagination walks ids in the byte order SQLite uses and lower() folds ASCII only, as SQLite's
-- does, whatever locale the database was created with.

CREATE TABLE identities (
  id            TEXT COLLATE "C" PRIMARY KEY,
  kind          TEXT    NOT NULL CHECK (kind IN ('guest', 'account')),
  username      TEXT COLLATE "C",
  password_hash TEXT,
  secret_hash   TEXT,
  created_at    BIGINT  NOT NULL,
  disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
  CHECK ((kind = 'guest') = (username IS NULL))
);
-- "Alice" and "alice" are one account.
CREATE UNIQUE INDEX identities_username ON identities (lower(username));

CREATE TABLE photos (
  id           TEXT COLLATE "C" PRIMARY KEY,
  identity_id  TEXT COLLATE "C" NOT NULL REFERENCES identities (id),
  key          TEXT COLLATE "C" NOT NULL UNIQUE,
  size         BIGINT  NOT NULL CHECK (size >= 0),
  content_type TEXT    NOT NULL,
  width        INTEGER NOT NULL CHECK (width >= 0),
  height       INTEGER NOT NULL CHECK (height >= 0),
  sha256       TEXT    NOT NULL,
  state        TEXT    NOT NULL CHECK (state IN ('queued', 'tagging', 'tagged', 'failed')),
  model        TEXT,
  error        TEXT,
  created_at   BIGINT  NOT NULL,
  tagged_at    BIGINT
);
-- Keyset pagination: WHERE identity_id = ? AND (created_at, id) < (?, ?) ORDER BY both DESC.
CREATE INDEX photos_identity_created ON photos (identity_id, created_at, id);

CREATE TABLE tags (
  photo_id   TEXT COLLATE "C" NOT NULL REFERENCES photos (id),
  rank       INTEGER          NOT NULL,
  label      TEXT COLLATE "C" NOT NULL,
  confidence DOUBLE PRECISION NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
  PRIMARY KEY (photo_id, rank)
);

CREATE TABLE jobs (
  id               TEXT COLLATE "C" PRIMARY KEY,
  photo_id         TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES photos (id),
  state            TEXT    NOT NULL CHECK (state IN ('queued', 'leased', 'done', 'dead')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  max_attempts     INTEGER NOT NULL,
  not_before       BIGINT  NOT NULL,
  lease_owner      TEXT COLLATE "C",
  lease_expires_at BIGINT,
  last_error       TEXT,
  created_at       BIGINT  NOT NULL,
  updated_at       BIGINT  NOT NULL
);
-- Due work and queue depth read only the queued/leased part of these.
CREATE INDEX jobs_ready ON jobs (state, not_before);
CREATE INDEX jobs_lease ON jobs (state, lease_expires_at);

-- Monotonic totals for /metrics, updated in the transaction that causes them.
CREATE TABLE job_counters (
  name  TEXT   PRIMARY KEY,
  value BIGINT NOT NULL
);
INSERT INTO job_counters (name, value)
  VALUES ('done', 0), ('dead', 0), ('retried', 0), ('expired', 0);

-- ids are assigned as MAX(id) + 1 under a transaction-scoped advisory lock that is held until
-- commit, so they increase in commit order (a sequence would not: its numbers are handed out
-- at insert time, and a reader could pass an id whose transaction commits later).
CREATE TABLE events (
  id          BIGINT PRIMARY KEY,
  identity_id TEXT COLLATE "C" NOT NULL,
  type        TEXT   NOT NULL CHECK (type IN ('photo.created', 'photo.tagged', 'photo.failed',
                                              'photo.deleted')),
  data        TEXT   NOT NULL,
  created_at  BIGINT NOT NULL
);
CREATE INDEX events_identity ON events (identity_id, id);
CREATE INDEX events_created ON events (created_at);

-- 002_settings.sql - values every node of one deployment must agree on, written once by the
-- first node that needs them (the token keyring when several nodes share a PostgreSQL catalog).
CREATE TABLE settings (
  name       TEXT   PRIMARY KEY,
  value      TEXT   NOT NULL,
  created_at BIGINT NOT NULL
);

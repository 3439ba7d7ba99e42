-- Secrets msngate generates once and must keep across restarts (src/core/accounts.rs).
-- Portable SQL: SQLite and PostgreSQL. `value` is lowercase hex.
--
-- 'md5_decoy': the key that derives the MD5 salt handed to a handle without an
-- account; a salt that changed at each restart would tell which handles exist.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Single sign-on (issue #24): accounts that sign in through the jobcenter's
-- OpenID provider, and the logins under way. Keep in step with
-- migrations/sqlite/0014_oidc.sql.
--
-- oidc_subject is "<issuer> <sub>" of an account the provider signs in,
-- NULL for a local account with a password. A provider's account has an
-- empty password_hash, which never matches. Its name is the one of its first
-- login; its roles and Dienststellen are set anew from the provider's claims
-- at each login.
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc_subject ON users (oidc_subject);

-- A login sent to the provider and not yet back: found by the SHA-256 of its
-- state parameter, bound to the browser that started it (SHA-256 of its
-- bridge_oidc cookie), used once (deleted when the provider's answer comes).
CREATE TABLE oidc_logins (
    state_hash    TEXT PRIMARY KEY,
    browser_hash  TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
-- Logins older than ten minutes go whenever a new one starts.
CREATE INDEX oidc_logins_created ON oidc_logins (created_at);

-- The ID token of a session's sign-on, sent back to the provider as the
-- logout's id_token_hint; deleted with its session.
ALTER TABLE sessions ADD COLUMN id_token TEXT;

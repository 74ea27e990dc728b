-- Single sign-on (issue #24): accounts that sign in through the jobcenter's
-- OpenID provider, and the logins under way. Keep in step with
-- migrations/postgres/0016_oidc.sql.
--
-- oidc_subject is "<issuer> <sub>" of an account the provider signs in
-- (NULL for a local account with a password; such an account's
-- password_hash is empty and never matches). Its roles and Dienststellen are
-- set anew from the provider's claims at each login.
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
    created_at    TEXT NOT NULL
);

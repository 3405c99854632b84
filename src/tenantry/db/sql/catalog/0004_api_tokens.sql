-- Admin API tokens. The secret part of a token is never stored: only its SHA-256 (tokens are
-- 256 random bits, so a plain digest is as good as a slow hash) and a short random prefix to
-- find the row by. Names are never reused, so `token:<name>` in the audit log names one token.
-- Runs as the owner role; the runtime role gets no access (REVOKE below, no GRANT).

CREATE TABLE tenantry.api_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{{0,62}}$'),
    prefix        text NOT NULL UNIQUE CHECK (prefix ~ '^[a-z0-9]{{12}}$'),
    hash          bytea NOT NULL CHECK (length(hash) = 32),
    scopes        text[] NOT NULL CHECK (cardinality(scopes) > 0),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- the jobs of long operations, newest first (the admin API's job list pages by this key)
CREATE INDEX jobs_created ON tenantry.jobs (created_at DESC, id DESC);
-- the audit log, filtered by actor (what did this token do?)
CREATE INDEX audit_log_actor ON tenantry.audit_log (actor, id);

REVOKE ALL ON tenantry.api_tokens FROM PUBLIC;

-- APIs, roles and groups (issue 16): who may get which scope.
-- Every change lands in migrations/postgres and migrations/sqlite alike.

-- A resource server: `identifier` is its tokens' `aud` and the RFC 8707
-- `resource` that names it. Cached with the clients (same epoch).
CREATE TABLE apis (
    id               TEXT PRIMARY KEY,
    identifier       TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    user_access      TEXT NOT NULL CHECK (user_access IN ('roles', 'any')),
    token_claims     TEXT NOT NULL, -- space-separated: roles groups permissions
    access_token_ttl INTEGER NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- A scope belongs to exactly one API.
CREATE TABLE api_scopes (
    scope       TEXT PRIMARY KEY,
    api_id      TEXT NOT NULL REFERENCES apis (id) ON DELETE CASCADE,
    description TEXT NOT NULL
);
CREATE INDEX api_scopes_api ON api_scopes (api_id);

CREATE TABLE roles (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE role_scopes (
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    scope   TEXT NOT NULL REFERENCES api_scopes (scope) ON DELETE CASCADE,
    PRIMARY KEY (role_id, scope)
);
CREATE INDEX role_scopes_scope ON role_scopes (scope);

CREATE TABLE user_groups (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
-- A user's permissions are read by user: these indexes make it one
-- indexed query (store/access.rs).
CREATE INDEX group_members_user ON group_members (user_id);
CREATE TABLE group_roles (
    group_id TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    role_id  TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, role_id)
);
CREATE INDEX group_roles_role ON group_roles (role_id);
CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles (role_id);

-- Data changes that need the running configuration (the issuer), done
-- once by the first process that starts after this migration
-- (startup::Runtime::open), then deleted. `legacy_api`: one API, named by the
-- issuer, with policy `any`, for the scopes clients registered before APIs
-- existed, so that their tokens keep their scope and `aud`.
CREATE TABLE pending_seeds (
    name TEXT PRIMARY KEY
);
INSERT INTO pending_seeds (name) VALUES ('legacy_api');

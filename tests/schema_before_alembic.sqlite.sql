-- The tables as the last version before Alembic (a208bf4) made them on sqlite: its create_all's DDL.
-- Frozen: the tests build 'a database made by today's version' from this, whatever models.py becomes.

CREATE TABLE api_clients (
    id INTEGER NOT NULL,
    name VARCHAR(100) NOT NULL,
    key_hash VARCHAR(64) NOT NULL,
    key_prefix VARCHAR(12) NOT NULL,
    source VARCHAR(10) NOT NULL,
    created_at DATETIME NOT NULL,
    rotated_at DATETIME,
    revoked_at DATETIME,
    rate_limit VARCHAR(100),
    daily_token_quota INTEGER,
    env_key_hash VARCHAR(64),
    env_key_refused VARCHAR(10),
    PRIMARY KEY (id),
    UNIQUE (key_hash)
);
CREATE INDEX ix_api_clients_env_key_hash ON api_clients (env_key_hash);
CREATE INDEX ix_api_clients_name ON api_clients (name);

CREATE TABLE cache_entries (
    id INTEGER NOT NULL,
    "key" VARCHAR(64) NOT NULL,
    model VARCHAR(100) NOT NULL,
    body BLOB NOT NULL,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    last_used_at DATETIME NOT NULL,
    hits INTEGER NOT NULL,
    PRIMARY KEY (id),
    UNIQUE ("key")
);
CREATE INDEX ix_cache_entries_last_used_at ON cache_entries (last_used_at);

CREATE TABLE hourly_attempts (
    id INTEGER NOT NULL,
    hour VARCHAR(19) NOT NULL,
    route VARCHAR(200) NOT NULL,
    model_used VARCHAR(100),
    status_code INTEGER NOT NULL,
    client_id INTEGER,
    outcome VARCHAR(20) NOT NULL,
    attempt_status INTEGER,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_hourly_attempts_hour ON hourly_attempts (hour);

CREATE TABLE hourly_histograms (
    id INTEGER NOT NULL,
    scope VARCHAR(220) NOT NULL,
    metric VARCHAR(10) NOT NULL,
    hour VARCHAR(19) NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_hourly_histograms_scope ON hourly_histograms (scope, metric, hour);

CREATE TABLE hourly_rollups (
    id INTEGER NOT NULL,
    hour VARCHAR(19) NOT NULL,
    route VARCHAR(200) NOT NULL,
    model_used VARCHAR(100),
    status_code INTEGER NOT NULL,
    error_code VARCHAR(64),
    client_id INTEGER,
    cache_status VARCHAR(10),
    first_model VARCHAR(100),
    requests INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    latency_sum DOUBLE NOT NULL,
    upstream_sum DOUBLE NOT NULL,
    upstream_count INTEGER NOT NULL,
    overhead_sum DOUBLE NOT NULL,
    ttfb_sum DOUBLE NOT NULL,
    ttfb_count INTEGER NOT NULL,
    retried INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_hourly_rollups_hour ON hourly_rollups (hour);

CREATE TABLE metrics (
    id INTEGER NOT NULL,
    timestamp DATETIME NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    temperature DOUBLE,
    max_output_tokens INTEGER,
    PRIMARY KEY (id)
);
CREATE INDEX ix_metrics_timestamp ON metrics (timestamp);

CREATE TABLE rolled_hours (
    hour VARCHAR(19) NOT NULL,
    built_at DATETIME NOT NULL,
    PRIMARY KEY (hour)
);

CREATE TABLE request_log (
    id INTEGER NOT NULL,
    request_id VARCHAR(64) NOT NULL,
    created_at DATETIME NOT NULL,
    route VARCHAR(200) NOT NULL,
    method VARCHAR(10) NOT NULL,
    client_id INTEGER,
    model_requested VARCHAR(100),
    model_used VARCHAR(100),
    status_code INTEGER NOT NULL,
    error_code VARCHAR(64),
    error_message TEXT,
    latency_ms DOUBLE NOT NULL,
    upstream_latency_ms DOUBLE,
    ttfb_ms DOUBLE,
    attempt_count INTEGER NOT NULL,
    streamed BOOLEAN NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    token_source VARCHAR(20),
    cache_status VARCHAR(10),
    finish_reason VARCHAR(40),
    temperature DOUBLE,
    max_output_tokens INTEGER,
    metric_id INTEGER,
    PRIMARY KEY (id),
    UNIQUE (request_id),
    FOREIGN KEY(client_id) REFERENCES api_clients (id) ON DELETE SET NULL,
    FOREIGN KEY(metric_id) REFERENCES metrics (id) ON DELETE SET NULL
);
CREATE INDEX ix_request_log_client_created ON request_log (client_id, created_at);
CREATE INDEX ix_request_log_created_at ON request_log (created_at, status_code, latency_ms, prompt_tokens, completion_tokens, total_tokens, model_used, cache_status);
CREATE INDEX ix_request_log_model_created ON request_log (model_used, created_at);
CREATE INDEX ix_request_log_route_created ON request_log (route, created_at);
CREATE INDEX ix_request_log_status_created ON request_log (status_code, created_at);

CREATE TABLE attempts (
    id INTEGER NOT NULL,
    request_log_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    started_at DATETIME NOT NULL,
    model VARCHAR(100) NOT NULL,
    key_id VARCHAR(24),
    outcome VARCHAR(20) NOT NULL,
    status_code INTEGER,
    error_code VARCHAR(64),
    error_message TEXT,
    latency_ms DOUBLE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(request_log_id) REFERENCES request_log (id) ON DELETE CASCADE
);
CREATE INDEX ix_attempts_request_log_id ON attempts (request_log_id);

CREATE TABLE exchanges (
    id INTEGER NOT NULL,
    request_log_id INTEGER NOT NULL,
    path TEXT NOT NULL,
    "query" TEXT,
    action VARCHAR(60),
    stream_format VARCHAR(10),
    key_source VARCHAR(10) NOT NULL,
    upstream_status INTEGER,
    aborted VARCHAR(20),
    request_headers TEXT,
    response_headers TEXT,
    request_bytes INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL,
    top_p DOUBLE,
    top_k INTEGER,
    thoughts_tokens INTEGER,
    cached_tokens INTEGER,
    PRIMARY KEY (id),
    UNIQUE (request_log_id),
    FOREIGN KEY(request_log_id) REFERENCES request_log (id) ON DELETE CASCADE
);

CREATE TABLE exchange_bodies (
    id INTEGER NOT NULL,
    exchange_id INTEGER NOT NULL,
    request_body BLOB,
    response_body BLOB,
    request_truncated BOOLEAN NOT NULL,
    response_truncated BOOLEAN NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (exchange_id),
    FOREIGN KEY(exchange_id) REFERENCES exchanges (id) ON DELETE CASCADE
);

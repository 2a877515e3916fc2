"""The application factory; `python app.py` runs a development server."""
import os
import time

from flask import Flask

from config import load_settings
from proxy.api import api
from proxy.api.errors import register as register_errors
from proxy.logsetup import configure_logging
from proxy.passthrough.forwarder import Forwarder
from proxy.passthrough.views import bp as passthrough
from proxy.requestctx import begin, finish
from proxy.storage.database import init_database
from proxy.storage.recorder import record
from proxy.upstream.gemini_sdk import GeminiSdk
from proxy.upstream.keypool import KeyPool
from proxy.upstream.retry import RetryPolicy
from proxy.upstream.service import GenerationService


def create_app(config=None):
    """Build the app from the environment, or, for tests, from defaults plus `config`."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(load_settings() if config is None else load_settings({}))
    app.config.update(config or {})
    app.config["RESTX_MASK_SWAGGER"] = False
    app.config["RESTX_ERROR_404_HELP"] = False
    configure_logging(app.config["LOG_LEVEL"], app.config["GEMINI_API_KEYS"])

    init_database(app)
    app.extensions["started_at"] = time.monotonic()
    # One key pool for both APIs: a key resting after a 429 rests for every caller.
    pool = KeyPool(app.config["GEMINI_API_KEYS"])
    policy = RetryPolicy.from_config(app.config)
    app.extensions["gemini"] = GenerationService(
        sdk=GeminiSdk(app.config["GEMINI_BASE_URL"]),
        pool=pool,
        models=app.config["GEMINI_MODELS"],
        policy=policy,
        deadline=app.config["REQUEST_DEADLINE_SECONDS"],
        upstream_timeout=app.config["UPSTREAM_TIMEOUT_SECONDS"],
        quota_cooldown=app.config["QUOTA_COOLDOWN_SECONDS"],
        fallback=app.config["FALLBACK_ENABLED"],
    )
    app.extensions["forwarder"] = Forwarder(
        app.config["GEMINI_BASE_URL"], pool, app.config["GEMINI_MODELS"], policy,
        connect_timeout=app.config["UPSTREAM_CONNECT_TIMEOUT_SECONDS"],
        read_timeout=app.config["UPSTREAM_TIMEOUT_SECONDS"],
        deadline=app.config["REQUEST_DEADLINE_SECONDS"],
        pool_size=app.config["UPSTREAM_POOL_SIZE"],
        fallback_scope=app.config["PASSTHROUGH_FALLBACK"],
        max_attempts=app.config["PASSTHROUGH_MAX_ATTEMPTS"],
        quota_cooldown=app.config["QUOTA_COOLDOWN_SECONDS"],
    )

    app.before_request(begin)
    app.after_request(record)
    app.after_request(finish)
    register_errors(app)
    api.init_app(app)
    app.register_blueprint(passthrough)
    return app


if __name__ == "__main__":
    development = create_app()
    development.run(host=os.environ.get("HOST", "127.0.0.1"), port=development.config["PORT"], threaded=True)

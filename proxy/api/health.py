"""GET /health: is the proxy able to serve, and with what."""
import time

from flask import current_app
from flask_restx import Namespace, Resource, fields

from .. import __version__
from ..access import limits
from ..access.auth import auth_mode
from ..storage.database import db_reachable

ns = Namespace("health", description="Liveness and readiness", path="/health")

cooldown_model = ns.model("CoolDown", {
    "key_id": fields.String(description="Fingerprint of the resting key", example="key-1a2b3c4d"),
    "model": fields.String(description="The model it rests for", example="gemini-2.5-flash"),
    "seconds_left": fields.Float(description="Seconds until it serves again", example=12.5),
    "reason": fields.String(description="quota, quota_per_day or key_rejected", example="quota"),
})

health_model = ns.model("Health", {
    "status": fields.String(description="ok, or degraded: no API key, or the database refuses records "
                                        "(they are spooled and replayed; nothing is lost)", example="ok"),
    "version": fields.String(description="Proxy version", example=__version__),
    "uptime_seconds": fields.Float(description="Seconds since this worker started", example=3600.0),
    "database": fields.Raw(description="Whether the database answers", example={"reachable": True}),
    "spool": fields.Raw(description="Records on their way to the database: depth, all of them (a few in "
                                    "passing is normal); stuck, those waiting longer than twice "
                                    "SPOOL_REPLAY_SECONDS (plus RECORD_GATHER_SECONDS) because the database "
                                    "refuses or holds them off (any makes the status degraded); "
                                    "oldest_seconds, how long the oldest has waited; rejected, those it "
                                    "refused as invalid, kept apart in SPOOL_DIR for the operator; "
                                    "held_in_memory, those this worker keeps while the spool's disk refuses "
                                    "them too",
                        example={"depth": 0, "stuck": 0, "oldest_seconds": 0.0, "rejected": 0,
                                 "held_in_memory": 0}),
    "api_key_configured": fields.Boolean(description="Whether a Gemini API key is set (never the key)"),
    "api_keys": fields.Integer(description="How many keys the pool holds", example=2),
    "models": fields.List(fields.String, description="The model fallback chain, first is the default",
                          example=["gemini-2.5-flash", "gemini-2.5-flash-lite"]),
    "cooldowns": fields.List(fields.Nested(cooldown_model), description="Key x model pairs resting now"),
    "auth": fields.String(description="open (no client keys: anyone may call) or keys", example="keys"),
    "rate_limits": fields.String(description="Who shares the rate-limit counts: host (a file beside the "
                                             "database: every worker here), instances (Redis), or worker "
                                             "(memory://, or Redis is unreachable and this worker counts alone "
                                             "until it answers)", example="host"),
    "cooldown_sharing": fields.String(description="Who shares the key x model cool-downs: host (a file beside "
                                                  "the database), instances (Redis), or worker", example="host"),
    "live_sessions_sharing": fields.String(description="Who shares the count of a client's open Live sessions "
                                                       "(LIVE_SESSIONS_PER_CLIENT): host (a file beside the "
                                                       "database: every worker here; also while Redis is not "
                                                       "answering), or instances (Redis)", example="host"),
    "quota_sharing": fields.String(description="Who shares the token-quota and budget holds: host (a file beside "
                                               "the database: every worker here; also while Redis did not "
                                               "answer its last call), or instances (QUOTA_STORAGE_URL's Redis)",
                                   example="host"),
    "message": fields.String(description="What needs the operator's attention, when anything does"),
})


@ns.route("")
@ns.doc(security=[])
class Health(Resource):
    @ns.response(200, "Ready to serve", health_model)
    def get(self):
        """Report status, version, uptime, database reachability, spool depth and upstream configuration.

        The proxy keeps serving while the database is away (records are spooled), so that is a
        degraded state, not a reason for a load balancer to take the instance out."""
        service = current_app.extensions["gemini"]
        reachable = db_reachable()
        now = service.pool.clock()
        live_sessions = current_app.extensions["live_sessions"].sharing()
        quotas = current_app.extensions["quotas"].sharing()
        body = {
            "status": "ok" if len(service.pool) else "degraded",
            "version": __version__,
            "uptime_seconds": round(time.monotonic() - current_app.extensions["started_at"], 3),
            "database": {"reachable": reachable},
            "spool": current_app.extensions["records"].status(),
            "api_key_configured": bool(len(service.pool)),
            "api_keys": len(service.pool),
            "models": service.models,
            "auth": auth_mode() if reachable else "unknown",
            "rate_limits": limits.sharing(current_app),
            "cooldown_sharing": service.pool.sharing()["shared_by"],
            "live_sessions_sharing": live_sessions["shared_by"],
            "quota_sharing": quotas["shared_by"],
            "cooldowns": [
                {"key_id": c.key_id, "model": c.model, "seconds_left": round(c.until - now, 1), "reason": c.reason}
                for c in service.pool.cooldowns()
            ],
        }
        spool, notes = body["spool"], []
        if not len(service.pool):
            notes.append("No Gemini API key is configured: set GEMINI_API_KEY.")
        if spool["rejected"]:
            notes.append(f"The database refused {spool['rejected']} record(s) as invalid; they are kept in the "
                         "spool folder (rejected-*.jsonl).")
        if limits.storage_unreachable(current_app):
            notes.append("The rate-limit storage is unreachable: this worker counts rate limits alone, so they "
                         "are per worker until it answers again.")
        if not service.pool.sharing()["reachable"]:
            notes.append("Redis (COOLDOWN_STORAGE_URL) is not answering: key cool-downs are shared by this host's "
                         "workers only until it does.")
        if not live_sessions["reachable"]:
            notes.append("Redis (QUOTA_STORAGE_URL) is not answering: the Live session limit counts this host's "
                         "sessions only until it does.")
        if not quotas["reachable"]:
            notes.append("Redis (QUOTA_STORAGE_URL) did not answer: token quotas and budgets are held by this "
                         "host's workers only until it does.")
        if spool["held_in_memory"]:
            body["status"] = "degraded"
            notes.append(f"The spool's disk refuses records: {spool['held_in_memory']} are held in memory until "
                         "it or the database takes them.")
        if not reachable or spool["stuck"] or current_app.extensions["records"].failing:
            body["status"] = "degraded"
            problem = "The database is not answering" if not reachable else "The database refused records" \
                if current_app.extensions["records"].failing else "The database has not taken records for " \
                f"{spool['oldest_seconds']:.0f} s"
            notes.append(f"{problem}; {spool['depth']} record(s) wait in the spool and will be written when it "
                         "takes them.")
        if notes:
            body["message"] = " ".join(notes)
        return body, 200

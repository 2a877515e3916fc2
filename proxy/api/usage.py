"""GET /gemini/usage: a client reads its own usage, budget and quota with its own key."""
from flask import current_app
from flask_restx import Namespace, Resource, fields

from ..access.usage import usage_of
from ..errors import Unauthorized
from ..requestctx import current as current_state
from .schemas import UtcDateTime, document_errors, error_detail, error_model, nullable

ns = Namespace("usage", description="Your own usage and what is left of your budget (with your client key)",
               path="/gemini")
ns.add_model("ErrorDetail", error_detail)
ns.add_model("Error", error_model)

spend_fields = {
    "tokens": fields.Integer(description="Tokens billed (cache hits excluded)", example=12840),
    "requests": fields.Integer(description="Requests recorded, cache hits and refusals included", example=57),
    "cost_usd": fields.Float(description="Their cost at the proxy's prices, USD", example=0.0421),
    "starts_at": UtcDateTime(description="When the window began (UTC)"),
    "resets_at": UtcDateTime(description="When it ends (UTC)"),
}
today_model = ns.model("UsageToday", spend_fields)
period_model = ns.model("UsagePeriod", {
    **spend_fields,
    "period": fields.String(enum=["day", "month"], description="The budget's period (month when there is no "
                                                               "budget)", example="month"),
})
budget_model = ns.model("UsageBudget", {
    "usd": fields.Float(description="The key's budget per period, USD", example=25.0),
    "period": fields.String(enum=["day", "month"], example="month", description="UTC day or month"),
    "spent_usd": fields.Float(description="Spent, and held by requests in flight, this period", example=3.2),
    "remaining_usd": fields.Float(description="What is left this period", example=21.8),
    "resets_at": UtcDateTime(description="When the period ends and the budget is whole again (UTC)"),
})
quota_model = ns.model("UsageQuota", {
    "daily_tokens": fields.Integer(description="The key's daily token quota", example=200000),
    "used": fields.Integer(description="Used and held today (UTC)", example=12840),
    "remaining": fields.Integer(description="Left today", example=187160),
    "resets_at": UtcDateTime(description="Next UTC midnight"),
})
usage_model = ns.model("Usage", {
    "client_id": fields.Integer(description="Your client id", example=3),
    "name": fields.String(description="Your key's name", example="ci-pipeline"),
    "generated_at": UtcDateTime(description="When this was read (UTC)"),
    "today": fields.Nested(today_model, description="Since UTC midnight"),
    "period": fields.Nested(period_model, description="Since the budget period began"),
    "budget": nullable(fields.Nested)(budget_model, allow_null=True, description="Null: the key has no budget"),
    "quota": nullable(fields.Nested)(quota_model, allow_null=True, description="Null: no daily token quota applies"),
    "models": nullable(fields.List)(fields.String, description="The only models the key may use; null: every "
                                                               "model the proxy offers"),
    "expires_at": nullable(UtcDateTime)(description="When the key stops working; null: never"),
})


@ns.route("/usage")
class OwnUsage(Resource):
    @ns.marshal_with(usage_model, description="Your usage, budget and quota")
    @document_errors(ns, 401, 429)
    def get(self):
        """Your own usage today and this period, and what is left of your budget and quota."""
        client = current_state().client
        if client is None:
            raise Unauthorized("Usage is kept per client key: send yours as X-API-KEY or Authorization: Bearer.")
        return usage_of(client, current_app._get_current_object())

"""What the database has recorded a client (or everyone) spending since a moment: tokens, requests, cost."""
from sqlalchemy import func, select

from models import OwnedResource, RequestLog, db

from ..wire.usage import Usage

_HIT = "HIT"  # answers from the cache cost Gemini nothing: counted as requests, not as tokens or cost


def recorded(client_id, since, prices):
    """{tokens, requests, cost_usd} the database has recorded for the client (None: every request) since
    `since` (naive UTC). The cost is what each record stored when it was written; records from before costs
    were stored are priced here, at today's prices."""
    spent = (RequestLog.cache_status.is_(None)) | (RequestLog.cache_status != _HIT)
    whose = [RequestLog.client_id == client_id] if client_id is not None else []
    uncosted = RequestLog.cost_usd.is_(None)
    rows = db.session.execute(
        select(RequestLog.model_used, RequestLog.batch, uncosted, func.coalesce(func.sum(RequestLog.cost_usd), 0.0),
               *(func.coalesce(func.sum(column), 0) for column in (
                   RequestLog.total_tokens, RequestLog.prompt_tokens, RequestLog.completion_tokens,
                   RequestLog.cached_tokens, RequestLog.thoughts_tokens, RequestLog.tool_use_prompt_tokens)))
        .where(*whose, RequestLog.created_at >= since, spent)
        .group_by(RequestLog.model_used, RequestLog.batch, uncosted)).all()
    (requests,) = db.session.execute(select(func.count()).select_from(RequestLog).where(
        *whose, RequestLog.created_at >= since)).one()
    tokens, cost = 0, 0.0
    for model, batch, at_read_time, stored, total, prompt, completion, cached, thoughts, tool_use in rows:
        tokens += total
        cost += prices.cost(model, Usage(prompt=prompt, candidates=completion, cached=cached, thoughts=thoughts,
                                         tool_use_prompt=tool_use), bool(batch), long_context=False) \
            if at_read_time else stored
    return {"tokens": int(tokens), "requests": int(requests), "cost_usd": round(cost, 6)}


def outstanding_batches(client_id, since):
    """Micro-dollars of the estimates of batches counted since `since` whose usage is not counted yet: spent
    as far as a budget knows (the client's, or everyone's for None)."""
    whose = [OwnedResource.client_id == client_id] if client_id is not None else []
    (total,) = db.session.execute(select(func.coalesce(func.sum(OwnedResource.budget_micro), 0)).where(
        *whose, OwnedResource.budget_micro.is_not(None), OwnedResource.budget_settled_at.is_(None),
        OwnedResource.budget_at >= since)).one()
    return int(total)

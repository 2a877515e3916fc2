"""GET /metrics in the Prometheus text format (guarded like the operator endpoints)."""
from flask import Blueprint, Response, current_app

from .prometheus import BudgetCollector, SpoolCollector, exposition

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    status = current_app.extensions.get("budget_status")
    body, content_type = exposition(SpoolCollector(current_app.extensions["records"]),
                                    BudgetCollector(status) if status is not None else None)
    return Response(body, content_type=content_type)

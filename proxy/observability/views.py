"""GET /metrics in the Prometheus text format (guarded like the operator endpoints)."""
from flask import Blueprint, Response, current_app

from .prometheus import SpoolCollector, exposition

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    body, content_type = exposition(SpoolCollector(current_app.extensions["records"]))
    return Response(body, content_type=content_type)

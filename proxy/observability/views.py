"""GET /metrics in the Prometheus text format (guarded like the operator endpoints)."""
from flask import Blueprint, Response

from .prometheus import exposition

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    body, content_type = exposition()
    return Response(body, content_type=content_type)

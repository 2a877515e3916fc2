"""deploy/grafana-dashboard.json queries only metrics that /metrics exposes, and is a dashboard Grafana imports."""
import json
import os
import re

from tests.processes import ROOT

DASHBOARD = os.path.join(ROOT, "deploy", "grafana-dashboard.json")
METRIC = re.compile(r"\b(gemini_proxy_[a-z0-9_]+)")
# The series a family of each type exposes, beside its name (prometheus_client's text format).
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("_sum", "_count", "_created"), "untyped": ("",)}


def exposed(text):
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        base = name[:-len("_total")] if kind == "counter" and name.endswith("_total") else name
        names.update(base + suffix for suffix in SUFFIXES[kind])
    return names


def queries(dashboard):
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    found = [target["expr"] for panel in panels for target in panel["targets"]]
    found += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return panels, found


def test_every_metric_the_grafana_dashboard_queries_is_one_metrics_exposes(client):
    with open(DASHBOARD, encoding="utf-8") as file:
        dashboard = json.load(file)
    response = client.get("/metrics")
    assert response.status_code == 200
    available = exposed(response.get_data(as_text=True))
    panels, expressions = queries(dashboard)
    used = {name for expr in expressions for name in METRIC.findall(expr)}
    assert used and used <= available, sorted(used - available)
    # The families an operator watches first all have a panel.
    for family in ("gemini_proxy_requests_total", "gemini_proxy_request_duration_seconds_bucket",
                   "gemini_proxy_tokens_total", "gemini_proxy_upstream_attempts_total", "gemini_proxy_spool_records"):
        assert family in used, family
    # What Grafana needs to import it: unique panel ids, every query on the chosen Prometheus, on a 24-wide grid.
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert all(t["refId"] and t["datasource"] == panel["datasource"] for t in panel["targets"])
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36

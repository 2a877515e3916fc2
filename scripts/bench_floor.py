"""The benchmark's floor: the least a Flask app under the same Gunicorn gevent worker can do to forward
a Gemini call (no keys, limits, records, metrics or cache). What it adds is the platform's cost; what
the proxy adds beyond it is the proxy's own."""
import os

import urllib3
from flask import Flask, Response, request

app = Flask(__name__)
_upstream = os.environ["GEMINI_BASE_URL"].rstrip("/")
_http = urllib3.PoolManager(maxsize=1000, retries=False)


@app.post("/v1beta/<path:path>")
def forward(path):
    reply = _http.request("POST", f"{_upstream}/v1beta/{path}", body=request.get_data(), timeout=30,
                          headers={"Content-Type": "application/json",
                                   "x-goog-api-key": request.headers.get("x-goog-api-key", "")})
    return Response(reply.data, status=reply.status, content_type=reply.headers.get("Content-Type"))


@app.get("/health")
def health():
    return {"status": "ok"}

"""What every way of reaching Gemini is held to: both APIs, a stream and the official SDK, through the proxy."""
import json

from google import genai
from google.genai import types

from tests.conftest import KEYS, MODELS, rows, wait_for
from tests.conftest import generate_over_http as generate
from tests.conftest import native_over_http as native

MODEL = MODELS[0]


def both_apis_a_stream_and_the_sdk(server, over):
    """Through the running `server`, whose upstream is reached `over` something (TLS, HTTP/2): /gemini/generate,
    a native call, a native stream and the SDK each answered in full, and the four recorded as 200s."""
    assert generate(server, f"over {over}").json()["text"].startswith("Emulated")
    assert native(server, f"native over {over}").json()["candidates"]
    stream = native(server, f"a stream over {over}", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse")
    events = [json.loads(line[5:]) for line in stream.text.splitlines() if line.startswith("data:")]
    assert stream.status_code == 200 and len(events) > 1 and events[-1]["candidates"][0]["finishReason"] == "STOP"
    client = genai.Client(api_key=KEYS[0], http_options=types.HttpOptions(base_url=server.url))
    assert client.models.generate_content(model=MODEL, contents=f"an SDK, over {over} beyond the proxy").text
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log WHERE status_code = 200") == [(4,)],
             message="four records")

"""A local stand-in for the Hub's write API, for upload tests that stay offline.

huggingface_hub sends every request to HF_ENDPOINT; pointing that at this server lets the real
client code run up to the network and lets a test read what it would have sent. It answers only
the calls an upload of small files makes (create repo, validate the card's YAML, preupload, commit)
and records each request; anything else gets 404 and is recorded too.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HubStandIn:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.created: list[dict] = []  # bodies of POST /api/repos/create
        self.commits: dict[str, dict[str, bytes]] = {}  # repo id -> {path: bytes} of the last commit
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = self.path.split("?")[0]
                owner.requests.append(("POST", path))
                parts = path.strip("/").split("/")
                if path == "/api/repos/create":
                    payload = json.loads(body)
                    owner.created.append(payload)
                    return self._reply(
                        200, {"url": f"{owner.url}/{payload['organization']}/{payload['name']}"}
                    )
                if path == "/api/validate-yaml":
                    return self._reply(200, {"warnings": []})
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(
                        200,
                        {
                            "files": [
                                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                for f in files
                            ]
                        },
                    )
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
                    repo = f"{parts[2]}/{parts[3]}"
                    files = {}
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    owner.commits[repo] = files
                    return self._reply(
                        200, {"commitUrl": f"{owner.url}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40}
                    )
                return self._reply(404, {"error": f"stand-in does not serve POST {path}"})

            def do_GET(self):
                owner.requests.append(("GET", self.path))
                return self._reply(404, {"error": f"stand-in does not serve GET {self.path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

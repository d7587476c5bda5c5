"""A local stand-in for the Hub's write API, for upload tests that stay offline.

huggingface_hub sends every request to HF_ENDPOINT; pointing that at this server lets the real
client code run up to the network and lets a test read what it would have sent. It answers the calls an upload of small files makes
(create repo, validate the card's YAML, preupload, commit) and those a download of the committed
files makes (revision info, tree, resolve); it records each request, and anything else gets 404.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "a" * 40  # every commit gets this id


def blob_id(data: bytes) -> str:
    """git's blob id, what the Hub reports as a file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


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
                        200, {"commitUrl": f"{owner.url}/{repo}/commit/{COMMIT}", "commitOid": "a" * 40}
                    )
                return self._reply(404, {"error": f"stand-in does not serve POST {path}"})

            def _file(self, send_body: bool) -> None:
                path = self.path.split("?")[0]
                owner.requests.append(("GET" if send_body else "HEAD", path))
                parts = path.strip("/").split("/")
                repo = "/".join(parts[2:4]) if parts[:2] == ["api", "models"] else "/".join(parts[:2])
                files = owner.commits.get(repo)
                if files is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RepoNotFound")
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                if parts[:2] == ["api", "models"] and parts[4] == "revision":
                    siblings = [{"rfilename": name} for name in files]
                    return self._reply(
                        200, {"id": repo, "modelId": repo, "sha": COMMIT, "siblings": siblings}
                    )
                if parts[:2] == ["api", "models"] and parts[4] == "tree":
                    tree = [
                        {"type": "file", "path": n, "size": len(d), "oid": blob_id(d)}
                        for n, d in files.items()
                    ]
                    return self._reply(200, tree)
                if len(parts) >= 5 and parts[2] == "resolve" and "/".join(parts[4:]) in files:
                    data = files["/".join(parts[4:])]
                    self.send_response(200)
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("ETag", f'"{blob_id(data)}"')
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if send_body:
                        self.wfile.write(data)
                    return None
                return self._reply(404, {"error": f"stand-in does not serve {path}"})

            def do_GET(self):
                self._file(send_body=True)

            def do_HEAD(self):
                self._file(send_body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

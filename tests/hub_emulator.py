"""A local stand-in for the Hugging Face Hub's HTTP API (the subset huggingface_hub's snapshot_download uses):
repo info, recursive tree listing, and HEAD/GET of `resolve` URLs with ETag/X-Linked-* headers and Range.
It logs every request (method, path, whether a token came) and can refuse tokens, gate repos, or cut a
transfer short once (to test resumption)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

HOLD_REPO_S = 60.0  # the longest a held repo's request waits (a test that never releases it fails, not hangs)


class HubEmulator:
    def __init__(
        self,
        repos: dict[str, Path],
        gated: dict[str, str] | None = None,
        bandwidth: float | None = None,
        tags: dict[str, list[str]] | None = None,
        downloads: dict[str, int] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.repos = repos
        self.latency = latency  # seconds every request waits before it is answered (a distant Hub's round trip)
        self.tags = tags or {}  # repo id -> its tags (what the listing's filter= matches, e.g. base_model:finetune:X)
        self.downloads = downloads or {}  # repo id -> downloads (the listing's default order)
        self.bandwidth = bandwidth  # bytes/s of the whole link, shared by every transfer (None: unthrottled)
        self._link_free_at = 0.0  # when the throttled link has sent everything queued so far
        self._link_lock = threading.Lock()
        self._etags: dict[tuple[Path, int, int], str] = {}  # repo id -> folder (every file in it is a repo file)
        self.gated = gated or {}  # repo id -> the token that opens it
        self.log: list[tuple[str, str, bool, str]] = []  # method, path, token sent?, Range header
        self.agents: list[tuple[str, str, str, str]] = []  # (method, path, User-Agent, Range) of every request
        self.cut_once: set[str] = set()  # file names whose first GET is cut short
        self.ignore_range = False  # act as a server that answers a Range request with the whole file (200)
        self.hold: dict[str, threading.Event] = {}  # file name -> whole-file GETs wait until the event is set
        self.hold_repo: dict[str, threading.Event] = {}  # repo id -> every request about it waits for the event ...
        self.hold_timeouts: list[str] = []  # ... at most HOLD_REPO_S; the repos whose wait ended that way
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def sha(self, repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def __enter__(self) -> HubEmulator:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def pace(self, nbytes: int) -> None:
        """Hold a transfer until the shared link could have carried its `nbytes` (token bucket of one link)."""
        if not self.bandwidth:
            return
        import time

        with self._link_lock:
            now = time.monotonic()
            self._link_free_at = max(now, self._link_free_at) + nbytes / self.bandwidth
            until = self._link_free_at
        time.sleep(max(0.0, until - time.monotonic()))

    def etag(self, path: Path) -> str:
        st = path.stat()
        key = (path, st.st_size, st.st_mtime_ns)
        if key not in self._etags:
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    digest.update(chunk)
            self._etags[key] = digest.hexdigest()
        return self._etags[key]

    def files(self, repo: str) -> list[Path]:
        return sorted(p for p in self.repos[repo].rglob("*") if p.is_file())

    def _handler(self):  # noqa: ANN202
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _send_file(self, code: int, path: Path, start: int, length: int, headers: dict) -> None:
                """Stream `length` bytes of `path` from `start`, at the emulator's bandwidth if throttled."""

                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, str(v))
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command == "HEAD":
                    return
                sent = 0
                with open(path, "rb") as fh:
                    fh.seek(start)
                    while sent < length:
                        chunk = fh.read(min(1 << 20, length - sent))
                        hub.pace(len(chunk))
                        try:
                            self.wfile.write(chunk)
                        except (BrokenPipeError, ConnectionResetError):
                            return
                        sent += len(chunk)

            def _error(self, code: int, error_code: str, message: str) -> None:
                self._send(
                    code,
                    json.dumps({"error": message}).encode(),
                    {"X-Error-Code": error_code, "Content-Type": "application/json"},
                )

            def _repo(self, parts: list[str]) -> str | None:
                repo = "/".join(parts[:2])
                if repo not in hub.repos:
                    self._error(404, "RepoNotFound", "Repository not found")
                    return None
                need = hub.gated.get(repo)
                if need and self.headers.get("Authorization") != f"Bearer {need}":
                    self._error(401, "GatedRepo", "Access to this model is restricted. You must accept the licence.")
                    return None
                return repo

            def _listing(self, q: dict[str, list[str]]) -> None:
                """GET /api/models: author, search, filter (every one a tag), sort (downloads), limit."""
                author, search = q.get("author", [""])[0], q.get("search", [""])[0].lower()
                found = [
                    repo
                    for repo in hub.repos
                    if (not author or repo.split("/")[0] == author)
                    and search in repo.lower()
                    and set(q.get("filter", [])) <= set(hub.tags.get(repo, []))
                ]
                found.sort(key=lambda r: (-hub.downloads.get(r, 0), r))
                if "limit" in q:
                    found = found[: int(q["limit"][0])]
                body = [
                    {
                        "id": r,
                        "modelId": r,
                        "sha": hub.sha(r),
                        "downloads": hub.downloads.get(r, 0),
                        "gated": "manual" if r in hub.gated else False,
                        "private": False,
                        "tags": hub.tags.get(r, []),
                    }
                    for r in found
                ]
                self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

            def do_HEAD(self) -> None:  # noqa: N802
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802
                if hub.latency:
                    import time

                    time.sleep(hub.latency)
                path = unquote(urlparse(self.path).path)
                hub.log.append((self.command, path, "Authorization" in self.headers, self.headers.get("Range", "")))
                hub.agents.append(
                    (self.command, path, self.headers.get("User-Agent", ""), self.headers.get("Range", ""))
                )
                parts = path.strip("/").split("/")
                about = "/".join(parts[2:4] if parts[:2] == ["api", "models"] else parts[:2])
                held = hub.hold_repo.get(about)
                if held is not None and not held.wait(HOLD_REPO_S):
                    hub.hold_timeouts.append(about)
                if parts == ["api", "models"]:
                    return self._listing(parse_qs(urlparse(self.path).query))
                if parts[:2] == ["api", "models"]:
                    repo = self._repo(parts[2:])
                    if repo is None:
                        return
                    rest = parts[4:]
                    if rest[:1] == ["revision"]:
                        if rest[1] not in ("main", hub.sha(repo)):
                            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rest[1]}")
                        body = {
                            "id": repo,
                            "modelId": repo,
                            "sha": hub.sha(repo),
                            "private": False,
                            "siblings": [{"rfilename": str(p.relative_to(hub.repos[repo]))} for p in hub.files(repo)],
                        }
                        return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
                    if rest[:1] == ["tree"]:
                        entries = []
                        for p in hub.files(repo):
                            size = p.stat().st_size
                            entry = {
                                "type": "file",
                                "path": str(p.relative_to(hub.repos[repo])),
                                "size": size,
                                "oid": hub.etag(p)[:40],
                            }
                            if p.suffix in (".safetensors", ".bin", ".onnx"):
                                entry["lfs"] = {"oid": hub.etag(p), "size": size, "pointerSize": 134}
                            entries.append(entry)
                        return self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"})
                    return self._error(404, "EntryNotFound", "unknown API route")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo = self._repo(parts)
                    if repo is None:
                        return
                    if parts[3] not in ("main", hub.sha(repo)):
                        return self._error(404, "RevisionNotFound", f"Invalid rev id: {parts[3]}")
                    target = hub.repos[repo] / "/".join(parts[4:])
                    if not target.is_file():
                        return self._error(404, "EntryNotFound", "Entry not found")
                    size = target.stat().st_size
                    etag = hub.etag(target)
                    headers = {
                        "X-Repo-Commit": hub.sha(repo),
                        "ETag": f'"{etag}"',
                        "X-Linked-Etag": f'"{etag}"',
                        "X-Linked-Size": size,
                        "Accept-Ranges": "bytes",
                    }
                    start, end = 0, size - 1
                    rng = None if hub.ignore_range else self.headers.get("Range")
                    if rng and rng.startswith("bytes="):
                        first, _, last = rng[6:].partition("-")
                        start, end = int(first), min(int(last), size - 1) if last else size - 1
                    gate = hub.hold.get(target.name)
                    if gate is not None and self.command == "GET" and not rng:
                        gate.wait(timeout=900)  # an upper bound for a hang; the test releases it
                    if self.command == "GET" and target.name in hub.cut_once:
                        data = target.read_bytes()
                        hub.cut_once.discard(target.name)
                        self.send_response(200)
                        for k, v in headers.items():
                            self.send_header(k, str(v))
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data[: len(data) // 2])  # then the connection drops
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    code = 200
                    if rng:
                        code = 206
                        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
                    return self._send_file(code, target, start, end - start + 1, headers)
                self._error(404, "EntryNotFound", "unknown route")

        return Handler


def disk_bytes(root: Path) -> int:
    """Bytes of the regular files under `root` that were all there at one instant (symlinks not followed: a
    snapshot entry points to a blob). The walk lists them, then each is looked at again: a file still there was there
    when the walk ended (files come and go while the walk runs; a sum over the walk alone would add a deleted file to
    the one that replaced it)."""
    seen = []
    for folder, _, files in os.walk(root):
        seen += [os.path.join(folder, name) for name in files]
    total = 0
    for path in seen:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not os.path.islink(path):
            total += st.st_size
    return total

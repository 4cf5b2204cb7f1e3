"""A fault-injecting HTTP proxy for the reliability suite: it sits on 127.0.0.1 (a free port) in
front of an OpenAI-compatible server and answers a seeded share of the attempts with a fault.

Faults (`KINDS`, injected in turn so that enough faults exercise every kind once):
- status_503     503 with an OpenAI-style error body
- timeout        hold the request, answer nothing, until the client gives up and closes
- tcp_reset      close the connection with a TCP reset (RST), no answer
- html           200 with an HTML page (a captive portal, a misrouted proxy)
- status_429     429 with `Retry-After: 1`
- cut_body       200 whose body stops before its Content-Length, then the connection closes
- truncated_json 200 with a complete HTTP message whose JSON is cut in half
- status_500     500 with an OpenAI-style error body
- empty_json     200 with `{}`

Which attempts fail is a pure function of (seed, request body, attempt number for that body): the
same spec against the same seed meets the same faults whatever the timing. A faulted attempt never
reaches the upstream server.

`fresh_prompt=True` makes every answer a function of its own request alone on llama-cpp-python's
server, which reuses the KV cache of the request it served just before for the common prefix of the
next prompt (its answer at temperature 0 can depend on that, NOTES.md) and has no switch to turn
this off (`cache_prompt: false` belongs to llama.cpp's C++ server). The proxy then sends the server
a reset request (a prompt whose first token no chat prompt shares, so the server finds no common
prefix and starts from an empty cache) before each forwarded request, both under one lock: each
prompt is evaluated from scratch, whatever came before, in whatever order, retries included.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

KINDS: tuple[str, ...] = ("status_503", "timeout", "tcp_reset", "html", "status_429", "cut_body", "truncated_json",
                          "status_500", "empty_json")
"""In the order they are injected. The slow one (a timeout costs the client's whole timeout) comes
early, while the client's other connections keep the run going, and once in a run of up to 10 faults."""
HOLD_LIMIT_S = 30.0
"""A held ('timeout') request is released after this long even if the client has not given up."""
UPSTREAM_TIMEOUT_S = 120.0
RESET_BODY = json.dumps({"model": "reset", "prompt": "Reset.", "max_tokens": 1, "temperature": 0.0}).encode()

_CANNED = json.dumps({
    "id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "never seen by a test"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}}).encode()


class FaultProxy:
    """`with FaultProxy(upstream, rate=0.2, seed=8) as proxy:` then point a client at `proxy.base_url`."""

    def __init__(self, upstream_base_url: str, *, rate: float, seed: int, kinds: tuple[str, ...] = KINDS,
                 fresh_prompt: bool = False) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        up = urlsplit(upstream_base_url)
        if up.hostname != "127.0.0.1":
            raise ValueError(f"the proxy only forwards to 127.0.0.1, not {up.hostname}")
        self.upstream_host, self.upstream_port = up.hostname, up.port or 80
        self.upstream_prefix = up.path.rstrip("/")
        self.rate, self.seed, self.kinds, self.fresh_prompt = rate, seed, kinds, fresh_prompt
        self.lock = threading.Lock()
        self._upstream_lock = threading.Lock()
        self.attempts = 0
        """Requests received (every attempt the client made)."""
        self.forwarded = 0
        """Requests passed on to the upstream server."""
        self.faults: Counter[str] = Counter()
        """Faults injected, by kind."""
        self._per_body: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True  # a held request must not keep the test process alive
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "enter the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.upstream_prefix}"

    @property
    def injected(self) -> int:
        return sum(self.faults.values())

    # ---------------------------------------------------------------- decisions
    def decide(self, body: bytes) -> str | None:
        """The fault for this attempt (None: forward it). Seeded per (body, attempt number)."""
        try:  # the same request whatever order the client wrote its fields in
            digest = hashlib.sha256(json.dumps(json.loads(body), sort_keys=True).encode()).hexdigest()
        except ValueError:
            digest = hashlib.sha256(body).hexdigest()
        with self.lock:
            self.attempts += 1
            self._per_body[digest] += 1
            rng = random.Random(f"{self.seed}:{digest}:{self._per_body[digest]}")
            if rng.random() >= self.rate:
                self.forwarded += 1
                return None
            kind = self.kinds[self.injected % len(self.kinds)]
            self.faults[kind] += 1
            return kind

    def forward(self, method: str, path: str, body: bytes, content_type: str | None) -> tuple[int, str, bytes]:
        if not self.fresh_prompt or method != "POST":
            return self._send(method, path, body, content_type)
        with self._upstream_lock:
            status, _, data = self._send("POST", f"{self.upstream_prefix}/completions", RESET_BODY, None)
            if status != 200:
                raise RuntimeError(f"the reset request failed with {status}: {data[:200]!r}")
            return self._send(method, path, body, content_type)

    def _send(self, method: str, path: str, body: bytes, content_type: str | None) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=UPSTREAM_TIMEOUT_S)
        try:
            headers = {"Content-Type": content_type or "application/json", "Content-Length": str(len(body))}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type") or "application/json", resp.read()
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do: a tcp_reset hits a pooled connection
    owner: FaultProxy

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
        return

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        status, ctype, data = self.owner.forward("GET", self.path, b"", None)
        self._answer(status, ctype, data)

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.owner.decide(body)
        if kind is None:
            status, ctype, data = self.owner.forward("POST", self.path, body, self.headers.get("Content-Type"))
            self._answer(status, ctype, data)
            return
        getattr(self, f"_fault_{kind}")()

    # ---------------------------------------------------------------- answers
    def _answer(self, status: int, ctype: str, data: bytes, extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (its own timeout)
            self.close_connection = True

    def _error(self, status: int, extra: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": {"message": f"injected {status}", "type": "server_error"}}).encode()
        self._answer(status, "application/json", body, extra)

    def _fault_timeout(self) -> None:
        self.close_connection = True
        self.connection.settimeout(HOLD_LIMIT_S)
        try:
            self.connection.recv(1)  # b'' once the client gives up and closes its end
        except OSError:
            pass

    def _fault_status_429(self) -> None:
        self._error(429, {"Retry-After": "1"})

    def _fault_status_500(self) -> None:
        self._error(500)

    def _fault_status_503(self) -> None:
        self._error(503)

    def _fault_tcp_reset(self) -> None:
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _fault_cut_body(self) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_CANNED)))
        self.end_headers()
        self.wfile.write(_CANNED[: len(_CANNED) // 3])
        self.wfile.flush()

    def _fault_truncated_json(self) -> None:
        self._answer(200, "application/json", _CANNED[: len(_CANNED) // 2])

    def _fault_html(self) -> None:
        self._answer(200, "text/html", b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>")

    def _fault_empty_json(self) -> None:
        self._answer(200, "application/json", b"{}")

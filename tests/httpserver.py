"""A real local HTTP server for tests: plays a provider's endpoint, records what
it received, and answers from a script (status codes, delays).

`answer` picks the body of a 2xx: "good" keeps the target contract (README,
"Outbound calls": a JSON object with `status` and the target's own `reference`),
"echo" keeps it but echoes the request back (as careless endpoints do, number and all),
"garbage" answers binary noise."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Endpoint:
    """`script` is a list of (status, delay_seconds); the last entry repeats."""

    script: list[tuple[int, float]] = field(default_factory=lambda: [(200, 0.0)])
    received: list[Received] = field(default_factory=list)
    effects: dict[str, int] = field(default_factory=dict)  # idempotency key → times applied
    url: str = ""
    answer: str = "good"  # "good", "echo" or "garbage"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> tuple[int, float]:
        with self.lock:
            index = min(len(self.received) - 1, len(self.script) - 1)
            return self.script[index]


@contextmanager
def http_endpoint(script: list[tuple[int, float]] | None = None, answer: str = "good") -> Iterator[Endpoint]:
    endpoint = Endpoint(script=script or [(200, 0.0)], answer=answer)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with endpoint.lock:
                endpoint.received.append(Received(self.path, dict(self.headers.items()), body))
            status, delay = endpoint.next_answer()
            if delay:
                time.sleep(delay)
            if 200 <= status < 300:
                # A careful receiver applies each idempotency key once.
                key = self.headers.get("Idempotency-Key", "")
                with endpoint.lock:
                    endpoint.effects[key] = endpoint.effects.get(key, 0) + (
                        0 if key in endpoint.effects else 1
                    )
            ok = 200 <= status < 300
            if ok and endpoint.answer == "garbage":
                payload = bytes(range(256)) * 2
            else:
                answer: dict[str, Any] = {"status": "done" if ok else "error", "code": status}
                if ok:
                    answer["reference"] = f"T-{len(endpoint.received)}"
                if endpoint.answer == "echo":
                    try:
                        answer["request"] = json.loads(body)
                    except ValueError:
                        answer["request"] = body.decode(errors="replace")
                    phone = answer["request"].get("phone") if isinstance(answer["request"], dict) else None
                    if phone and phone.startswith("+86") and len(phone) == 14:
                        # and again as some systems print it: "+86 138-0013-8000"
                        answer["msisdn"] = f"+86 {phone[3:6]}-{phone[6:10]}-{phone[10:]}"
                payload = json.dumps(answer, ensure_ascii=False).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller died mid-request: that is what some tests do

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/lanzuan"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()

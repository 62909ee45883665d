"""Load for the hot-path benchmarks: wrk for the most a server can carry (closed loop), and
an open-loop client here for latency at a fixed rate.

The open loop sends request i at t0 + i/rate whether or not earlier answers came back,
and measures each latency from that scheduled time (so a stalled server cannot hide its
queue: no coordinated omission). Requests are raw HTTP/1.1 bytes with keep-alive.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


def http_request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"", host: str = "127.0.0.1"
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


class _Pool:
    """Keep-alive connections, opened as needed up to `limit`; a caller waits for a free one."""

    def __init__(self, port: int, limit: int) -> None:
        self.port, self.limit, self.opened = port, limit, 0
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.waiters: list[asyncio.Future[None]] = []

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while not self.idle and self.opened >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter
        if self.idle:
            return self.idle.pop()
        self.opened += 1
        return await asyncio.open_connection("127.0.0.1", self.port)

    def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        """Give a connection back (None: it broke and is gone)."""
        if conn is None:
            self.opened -= 1
        else:
            self.idle.append(conn)
        if self.waiters:
            self.waiters.pop(0).set_result(None)

    def close(self) -> None:
        for _reader, writer in self.idle:
            writer.close()


async def _open_loop(
    port: int, requests: list[bytes], rate: float, seconds: float, max_connections: int
) -> Run:
    run, pool = Run(), _Pool(port, max_connections)

    async def one(payload: bytes, scheduled: float) -> None:
        conn = await pool.get()
        try:
            conn[1].write(payload)
            status = await _read_response(conn[0])
        except (OSError, asyncio.IncompleteReadError):
            conn[1].close()
            pool.put(None)
            run.statuses[0] = run.statuses.get(0, 0) + 1
            return
        run.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        run.statuses[status] = run.statuses.get(status, 0) + 1
        pool.put(conn)

    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(int(rate * seconds)):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(requests[i % len(requests)], scheduled)))
        run.sent += 1
    await asyncio.gather(*tasks)
    run.seconds = time.perf_counter() - start
    pool.close()
    return run


def open_loop(
    port: int, requests: list[bytes], *, rate: float, seconds: float, max_connections: int = 64
) -> Run:
    """Send at `rate` per second for `seconds`; latency from each request's scheduled time."""
    return asyncio.run(_open_loop(port, requests, rate, seconds, max_connections))


_WRK_SCRIPT = """
local requests = {}
for line in io.lines(os.getenv("WRK_REQUESTS")) do
  local request_, _ = line:gsub("\\\\r\\\\n", "\\r\\n")
  requests[#requests + 1] = request_
end
local counter = 0
function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end
function done(summary, latency, requests_)
  io.write(string.format('{"requests": %d, "seconds": %f, "p50": %f, "p99": %f, "non2xx": %d, "errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


@dataclass
class Throughput:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int  # not 2xx, or a connection error

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def closed_loop(port: int, requests: list[bytes], *, seconds: float, connections: int = 8) -> Throughput:
    """wrk with `connections` keep-alive connections, each sending its next request as soon as
    the last answer came: the most the server carries."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed for the throughput runs: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        script, lines = Path(tmp) / "bench.lua", Path(tmp) / "requests.txt"
        script.write_text(_WRK_SCRIPT)
        lines.write_text("\n".join(r.decode().replace("\r\n", "\\r\\n") for r in requests) + "\n")
        out = subprocess.run(
            [
                wrk,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}/",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "WRK_REQUESTS": str(lines)},
            check=True,
        ).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    return Throughput(
        requests=summary["requests"],
        seconds=summary["seconds"],
        p50_ms=summary["p50"],
        p99_ms=summary["p99"],
        failed=summary["non2xx"] + summary["errors"],
    )

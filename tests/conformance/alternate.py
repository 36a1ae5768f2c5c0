#!/usr/bin/env python3
"""An HTTP/1.1 reverse proxy that sends each request to the next upstream in turn.

Used to run a black-box suite against several Redrive servers sharing one database: every
request (not every connection: SDKs keep connections alive) goes to the next server, so a
message sent through one server is received, deleted or moved through another.

    alternate.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:A --upstream 127.0.0.1:B

The `Host` header is passed through unchanged, so queue URLs name the proxy. Each response
carries `x-redrive-upstream: <index>` so a test can check that requests really alternated.
Stdlib only; one thread per client connection (long polls block only their own thread).
"""

import argparse
import http.client
import itertools
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailers", "transfer-encoding", "upgrade",
}


class Alternator:
    def __init__(self, upstreams):
        self.upstreams = upstreams
        self._next = itertools.cycle(range(len(upstreams)))
        self._lock = threading.Lock()
        self.counts = [0] * len(upstreams)

    def pick(self):
        with self._lock:
            i = next(self._next)
            self.counts[i] += 1
            return i


def make_handler(alt, timeout):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: one line per request is too much for CI
            pass

        def _forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            i = alt.pick()
            host, port = alt.upstreams[i]
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn = None
            try:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError as e:
                msg = f"upstream {i} ({host}:{port}) failed: {e}\n".encode()
                self.send_response(502)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)
                return
            finally:
                if conn is not None:
                    conn.close()
            self.send_response_only(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-redrive-upstream", str(i))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

    return Handler


def parse_addr(s):
    host, _, port = s.rpartition(":")
    return (host or "127.0.0.1", int(port))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    ap.add_argument("--upstream", action="append", required=True, help="HOST:PORT (repeat)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per upstream request")
    args = ap.parse_args(argv)
    alt = Alternator([parse_addr(u) for u in args.upstream])
    server = ThreadingHTTPServer(parse_addr(args.listen), make_handler(alt, args.timeout))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # print the counts on a plain kill
    print(f"alternating {args.listen} -> {', '.join(args.upstream)}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        print(f"requests per upstream: {alt.counts}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

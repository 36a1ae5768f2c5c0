#!/usr/bin/env python3
"""A normal client's latency with and without slow clients (docs/performance.md).

Starts `redrive serve --in-memory` (release build), measures `redrive-bench` (interleaved
send -> receive -> delete) alone, then again while this script holds SLOW slowloris
connections (a header byte per second, never finished) and IDLE idle connections, reopening
any the server closes so that the counts stay up. Extra serve flags go after `--`.

usage: python3 tests/edge/slow_clients.py [--slow 500] [--idle 500] [--messages 20000]
                                           [--concurrency 1,8] [-- serve flags...]
Run from the workspace root after `cargo build --release -p redrive -p redrive-bench`.
"""
import argparse, os, re, resource, selectors, socket, subprocess, sys, threading, time, http.client

ap = argparse.ArgumentParser()
ap.add_argument("--slow", type=int, default=500)
ap.add_argument("--idle", type=int, default=500)
ap.add_argument("--messages", type=int, default=20000)
ap.add_argument("--concurrency", default="1,8")
ap.add_argument("serve_args", nargs="*")
a = ap.parse_args()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def rss_kb(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])

port = free_port()
srv = subprocess.Popen(["target/release/redrive", "serve", "--in-memory", "--port", str(port)] + a.serve_args,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard)))
for _ in range(200):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/"); c.getresponse().read(); break
    except OSError: time.sleep(0.05)

def bench(concurrency):
    out = subprocess.run(["target/release/redrive-bench", "--endpoint", f"http://127.0.0.1:{port}",
                          "--pattern", "interleaved", "--messages", str(a.messages),
                          "--concurrency", str(concurrency), "--summary"],
                         capture_output=True, text=True, check=True).stdout
    return [l for l in out.splitlines() if l.startswith("RESULT")][-1]

HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nX-Pad: " + b"a" * 10000
stop = threading.Event(); stats = {"closed_slow": 0, "closed_idle": 0, "reopened": 0}

def attacker():
    sel = selectors.DefaultSelector(); conns = {}
    def open_one(kind):
        s = socket.create_connection(("127.0.0.1", port)); s.setblocking(False)
        conns[s] = [kind, 0, time.time()]; sel.register(s, selectors.EVENT_READ)
    for _ in range(a.slow): open_one("slow")
    for _ in range(a.idle): open_one("idle")
    next_drip = time.time()
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try: d = s.recv(4096)
            except (BlockingIOError, InterruptedError): continue
            except OSError: d = b""
            if not d:
                kind = conns.pop(s)[0]; sel.unregister(s); s.close()
                stats["closed_" + kind] += 1
                open_one(kind); stats["reopened"] += 1
        if time.time() >= next_drip:
            next_drip += 1.0
            for s, st in list(conns.items()):
                if st[0] == "slow":
                    try: s.send(HEAD[st[1] % len(HEAD):st[1] % len(HEAD) + 1]); st[1] += 1
                    except OSError: pass
    for s in conns: s.close()

levels = [int(x) for x in a.concurrency.split(",")]
print("serve flags:", " ".join(a.serve_args) or "(defaults)")
print("rss_kb before", rss_kb(srv.pid))
for c in levels: print("alone   c=%d" % c, bench(c))
t = threading.Thread(target=attacker); t.start(); time.sleep(3)
print(f"holding {a.slow} slowloris + {a.idle} idle; rss_kb", rss_kb(srv.pid))
for c in levels: print("attack  c=%d" % c, bench(c))
print("rss_kb during", rss_kb(srv.pid), "server closes so far", stats)
stop.set(); t.join()
for c in levels: print("after   c=%d" % c, bench(c))
srv.terminate(); srv.wait()

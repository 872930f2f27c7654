#!/usr/bin/env python3
"""A stand-in for vmm's control socket that plays a scripted migration, for
vmmctl's tests: fake_vmm_api.py SOCKET SCENARIO serves one client; migrate
succeeds, then each query-migrate returns the next step of the scenario (the
last one repeats)."""
import json
import os
import socket
import sys

PROGRESS = [
    {"status": "setup", "round": 0},
    {"status": "active", "round": 1, "pages-dirtied-last-round": 0, "mbps": 700.0,
     "expected-downtime-ms": 300},
    {"status": "active", "round": 1, "pages-dirtied-last-round": 0, "mbps": 710.0,
     "expected-downtime-ms": 300},
    {"status": "active", "round": 2, "pages-dirtied-last-round": 5000, "mbps": 800.5,
     "expected-downtime-ms": 25},
]
DONE = {"status": "completed", "round": 3, "pages-sent": 140000, "total-time-ms": 2140,
        "downtime-ms": 11}
SCENARIOS = {
    "completed": PROGRESS + [dict(DONE, verify={"pages-compared": 131072, "pages-differ": 0,
                                                "first-differing": []})],
    "differ": PROGRESS + [dict(DONE, verify={"pages-compared": 131072, "pages-differ": 2,
                                             "first-differing": ["0x1000", "0x2000"]})],
    "no-verify": PROGRESS + [DONE],
    "failed": PROGRESS + [{"status": "failed", "round": 2,
                           "error": "the destination closed the connection"}],
    "cancelled": PROGRESS[:2] + [{"status": "cancelled", "round": 1}],
}


def main():
    path, steps = sys.argv[1], SCENARIOS[sys.argv[2]]
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path + ".tmp")
    srv.listen(1)
    os.rename(path + ".tmp", path)  # the socket appears ready to accept
    conn, _ = srv.accept()
    f = conn.makefile("rwb")
    step = 0
    for line in f:
        req = json.loads(line)
        if req["execute"] == "migrate":
            ret = {}
        else:
            ret = steps[min(step, len(steps) - 1)]
            step += 1
        f.write((json.dumps({"return": ret, "id": req.get("id")}) + "\n").encode())
        f.flush()


main()

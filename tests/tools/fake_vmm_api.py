#!/usr/bin/env python3
"""A stand-in for vmm's control socket that plays a scripted migration, for
vmmctl's tests: fake_vmm_api.py SOCKET SCENARIO serves one client; migrate
succeeds, then each other request (query-migrate, status) returns the next step of
the scenario (the last one repeats). The bad-* scenarios answer with replies vmm
would never send: members missing or of the wrong type (vmmctl_bad_replies.sh)."""
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
BREAKDOWN = {"pause": 0, "stop-devices": 3, "final-pages": 2, "verify": 1, "state": 1,
             "destination": 4}
SCENARIOS = {
    "completed": PROGRESS + [dict(DONE, verify={"pages-compared": 131072, "pages-differ": 0,
                                                "first-differing": []},
                                  **{"downtime-breakdown": BREAKDOWN})],
    "differ": PROGRESS + [dict(DONE, verify={"pages-compared": 131072, "pages-differ": 2,
                                             "first-differing": ["0x1000", "0x2000"]})],
    "no-verify": PROGRESS + [DONE],
    "failed": PROGRESS + [{"status": "failed", "round": 2,
                           "error": "the destination closed the connection"}],
    "cancelled": PROGRESS[:2] + [{"status": "cancelled", "round": 1}],
}
STATUS = {"state": "running", "vcpus": 2, "memory-bytes": 1 << 30, "uptime-ms": 73012,
          "nets": [{"id": "net0", "socket": "/tmp/vhost0.sock", "connected": True,
                    "link-up": True, "queue-pairs": 1}], "reboots": 0}
QUERY = dict(DONE, **{"pages-dirtied-last-round": 0, "total-pages": 131072, "mbps": 812.5,
                      "expected-downtime-ms": 9, "downtime-breakdown": BREAKDOWN},
             verify={"pages-compared": 131072, "pages-differ": 2,
                     "first-differing": ["0x1000", "0x2000"]})
SCENARIOS.update({
    "status": [STATUS],
    "query": [QUERY],
    "bad-nets-missing": [{k: v for k, v in STATUS.items() if k != "nets"}],
    "bad-nets-string": [dict(STATUS, nets="net0")],
    "bad-net-number": [dict(STATUS, nets=[7])],
    "bad-vcpus-string": [dict(STATUS, vcpus="two")],
    "bad-first-differing-object": [dict(QUERY, verify=dict(QUERY["verify"], **{
        "first-differing": {"0": "0x1000"}}))],
    "bad-first-differing-missing": [dict(QUERY, verify={"pages-compared": 1,
                                                        "pages-differ": 1})],
    "bad-verify-array": [dict(QUERY, verify=[])],
    "bad-migrate-first-differing-object": PROGRESS + [dict(DONE, verify={
        "pages-compared": 131072, "pages-differ": 2, "first-differing": {}})],
    "bad-migrate-status-missing": PROGRESS[:2] + [{"round": 2}],
    "bad-progress-round-string": PROGRESS[:1] + [dict(PROGRESS[1], round="1")],
    "bad-breakdown-array": [dict(QUERY, **{"downtime-breakdown": [1, 2]})],
    "bad-migrate-breakdown-phase": PROGRESS + [dict(DONE, **{"downtime-breakdown": {
        "pause": 0, "stop-devices": -3}})],
})


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

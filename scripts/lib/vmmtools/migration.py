"""A live migration's figures, one definition for both VMMs.

The guest runs vmm-tick (guest-images/vmm-tick): a VMM-TICK line every 50 ms on its
console. The host stamps each console line as it arrives (console.Hub), and the
guest-visible gap is the stamp of the first tick on the destination's console minus
the stamp of the last tick on the source's. It covers everything between the guest's
last instruction on the source and its first on the destination, on both sides, plus up
to one tick period (the ticker's next line after the guest resumes).

Each VMM's own "downtime" figure is different: vmm's query-migrate downtime-ms runs on
the source from the vCPU pause to the destination's answer (state loaded, NICs started
on their backends, verify compared; before its vCPUs start); QEMU's query-migrate
downtime is source side, from the stop until the last byte is sent.
"""

import json
import time

from . import jsonlines

TICK = r"^VMM-TICK \d+"
TICK_MS = 50
# vmm-tick as the guest's background load (no double quotes: it sits in vmm.run="...").
TICKER = "vmm-tick %d" % TICK_MS


def gap(source, destination):
    """(gap in ms, the source's last tick, the destination's first) between two
    console.Streams; (None, ...) when either side has no tick."""
    last = source.find_last(TICK)
    first = destination.find(TICK)
    if not last or not first:
        return None, last and last[2].string, first and first[2].string
    return (first[1] - last[1]) * 1000.0, last[2].string, first[2].string


def gap_ms(source, destination):
    """The guest-visible gap in ms, or None."""
    return gap(source, destination)[0]


def vmmctl_result(output):
    """vmmctl --json migrate's last query-migrate reply (a dict with "status"), or None.
    vmmctl prints each reply line as vmm sent it, then its summary line."""
    last = None
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            reply = json.loads(line)
        except ValueError:
            continue
        ret = reply.get("return")
        if isinstance(ret, dict) and "status" in ret:
            last = ret
    return last


def qmp_migrate(qmp_path, uri, timeout, downtime_limit_ms=300):
    """QEMU's migration through QMP, as vmmctl does it for vmm: no bandwidth cap (QEMU
    7.2 caps a migration at 32 MiB/s by default; vmm has none) and vmm's 300 ms downtime
    budget. Returns query-migrate's last reply; raises CommandError when it failed."""
    end = time.monotonic() + timeout
    with jsonlines.Qmp(qmp_path, timeout) as qmp:
        qmp.call("migrate-set-parameters", **{"max-bandwidth": 1 << 40,
                                              "downtime-limit": downtime_limit_ms})
        qmp.call("migrate", uri=uri)
        while True:
            m = qmp.call("query-migrate")
            status = m.get("status")
            # QEMU 7.2 says completed a moment before it fills in total-time and
            # downtime (0 until then): ask again.
            if status == "completed" and (m.get("total-time") or time.monotonic() > end):
                return m
            if status in ("failed", "cancelled"):
                raise jsonlines.CommandError("migration %s: %s" % (status, m.get("error-desc", "")))
            if time.monotonic() > end and status != "completed":
                raise jsonlines.CommandError("migration still %s after %d s" % (status, timeout))
            time.sleep(0.05)

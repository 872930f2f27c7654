"""Processes the tools start, each in a process group of its own, and stopped by PID.

Every Proc is remembered until it is stopped, and stop_all() (called from the tools'
finally blocks, which SIGTERM/SIGINT/SIGHUP reach through exit_on_signals) stops the
rest, so no path leaves one behind. Only groups this process created are signalled.
"""

import os
import signal
import subprocess
import time

_running = []
_PF_EXITING = 0x4  # include/linux/sched.h


def shell_status(returncode):
    """A Popen returncode as a shell reports it: 128 + N for a death by signal N."""
    if returncode is None:
        return None
    return 128 - returncode if returncode < 0 else returncode


class Proc:
    """A child in its own session (setsid: its PID is its process group's id)."""

    def __init__(self, argv, name, stdin=subprocess.DEVNULL, stdout=None, stderr=None, env=None):
        self.name = name
        self.argv = list(argv)
        self.popen = subprocess.Popen(self.argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                      env=env, start_new_session=True)
        self.pid = self.popen.pid
        self.started = time.monotonic()
        _running.append(self)

    def alive(self):
        """Running; an exited child is reaped here, so a zombie counts as gone."""
        return self.popen.poll() is None

    def dying(self):
        """A process of the group is exiting (PF_EXITING) or exited unreaped. A killed
        process can take seconds to tear its memory down under emulation, and a shell
        that did not exec its command (dash's sh -c) waits for it all that time."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            # fields[0] is the state, [2] the process group, [6] the flags.
            if int(fields[2]) == self.pid and (fields[0] in "ZX" or int(fields[6]) & _PF_EXITING):
                return True
        return False

    @property
    def status(self):
        return shell_status(self.popen.returncode)

    def send(self, text):
        """Writes TEXT to the child's stdin (a pipe); False when the child closed it."""
        try:
            self.popen.stdin.write(text.encode())
            self.popen.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def wait(self, timeout):
        """The exit status, or None when still running after TIMEOUT seconds."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.status

    def _signal_group(self, sig):
        # The group outlives its leader when the leader did not exec its last child
        # (sh -c CMD): signal the group, then the PID for a child that left it.
        for send in (lambda: os.killpg(self.pid, sig), lambda: os.kill(self.pid, sig)):
            try:
                send()
                return
            except (ProcessLookupError, PermissionError):
                continue

    def stop(self, sig=signal.SIGTERM, grace=30.0):
        """SIG to the group, SIGKILL after GRACE seconds; the exit status."""
        if self.alive():
            self._signal_group(sig)
            if self.wait(grace) is None:
                self._signal_group(signal.SIGKILL)
                self.popen.wait()
        # Whatever of the group is left (a shell's child) goes too.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        # Only stdin: a stdout pipe may still be read (console.Hub closes it at its end).
        if self.popen.stdin:
            try:
                self.popen.stdin.close()
            except OSError:
                pass
        if self in _running:
            _running.remove(self)
        return self.status


def stop_all(grace=5.0):
    """Stops every Proc not stopped yet, the latest first."""
    for p in reversed(list(_running)):
        p.stop(signal.SIGTERM, grace)


def exit_on_signals():
    """SIGTERM, SIGHUP and SIGINT end the tool through SystemExit, so that its finally
    blocks stop what it started (statuses 143, 129, 130 as a shell's)."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, handler)

"""Console lines with host timestamps.

One reader thread watches every attached pipe (a VMM's stdout: the guest's console)
with a selector, stamps each line with time.monotonic() when the read that brought its
first byte returns, keeps the lines, and copies the bytes to a log file as they come.
The stamps do not depend on what the main thread is doing (a blocking QMP call, a
subprocess): the migration gap is a difference of two of them.

A line's first byte, not its end: a guest paused mid-line (a migration's source) ends
that line only on the destination, or at the end of the stream; and every byte of a
slow console (a VM exit each) arrives on its own.
"""

import os
import re
import selectors
import threading
import time


class Stream:
    """One pipe's lines, as (stamp, text) pairs; text without its line end or \\r."""

    def __init__(self, hub, name, log_path):
        self.hub = hub
        self.name = name
        self.lines = []
        self.eof = False
        self._partial = b""
        self._partial_stamp = None
        self._log = open(log_path, "ab", buffering=0) if log_path else None

    def _take(self, data, stamp):
        if self._log:
            self._log.write(data)
        chunks = (self._partial + data).split(b"\n")
        first_stamp = self._partial_stamp if self._partial else stamp
        self._partial = chunks.pop()
        self._partial_stamp = stamp
        for i, raw in enumerate(chunks):
            self.lines.append((first_stamp if i == 0 else stamp,
                               raw.decode("utf-8", "replace").rstrip("\r")))
        if self._partial and not chunks:
            self._partial_stamp = first_stamp

    def _close(self, stamp):
        if self._partial:
            self.lines.append((self._partial_stamp or stamp,
                               self._partial.decode("utf-8", "replace").rstrip("\r")))
            self._partial = b""
        self.eof = True
        if self._log:
            self._log.close()
            self._log = None

    # The queries below are for the main thread; they take the hub's lock.

    def __len__(self):
        with self.hub.cond:
            return len(self.lines)

    def find(self, pattern, start=0):
        """(index, stamp, match) of the first line from START matching PATTERN, or None."""
        rx = re.compile(pattern)
        with self.hub.cond:
            for i in range(start, len(self.lines)):
                m = rx.search(self.lines[i][1])
                if m:
                    return i, self.lines[i][0], m
        return None

    def find_last(self, pattern, start=0):
        """Like find, the last match."""
        rx = re.compile(pattern)
        with self.hub.cond:
            for i in range(len(self.lines) - 1, start - 1, -1):
                m = rx.search(self.lines[i][1])
                if m:
                    return i, self.lines[i][0], m
        return None

    def count(self, pattern):
        rx = re.compile(pattern)
        with self.hub.cond:
            return sum(1 for _, text in self.lines if rx.search(text))

    def texts(self, start=0, end=None):
        with self.hub.cond:
            return [text for _, text in self.lines[start:end]]

    def wait_eof(self, timeout):
        return self.hub.wait(lambda: self.eof, timeout)


class Hub:
    """The reader thread and the streams it serves."""

    def __init__(self):
        self.cond = threading.Condition()
        self._sel = selectors.DefaultSelector()
        self._pending = []
        self._wake_r, self._wake_w = os.pipe()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="console-reader", daemon=True)
        self._thread.start()

    def attach(self, fileobj, name, log_path=None):
        """A Stream for FILEOBJ (a pipe the caller no longer reads), logged to LOG_PATH."""
        stream = Stream(self, name, log_path)
        os.set_blocking(fileobj.fileno(), False)
        with self.cond:
            self._pending.append((fileobj, stream))
        os.write(self._wake_w, b"x")
        return stream

    def _run(self):
        while True:
            for key, _ in self._sel.select():
                if key.data is None:
                    os.read(self._wake_r, 4096)
                    self._register_pending()
                else:
                    self._read(key)

    def _register_pending(self):
        with self.cond:
            pending, self._pending = self._pending, []
        for fileobj, stream in pending:
            self._sel.register(fileobj, selectors.EVENT_READ, stream)

    def _read(self, key):
        stream = key.data
        try:
            data = os.read(key.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        stamp = time.monotonic()
        with self.cond:
            if data:
                stream._take(data, stamp)
            else:
                self._sel.unregister(key.fileobj)
                key.fileobj.close()
                stream._close(stamp)
            self.cond.notify_all()

    def wait(self, predicate, timeout, poll=0.2, give_up=None):
        """Waits until PREDICATE() holds (True), or TIMEOUT seconds pass or GIVE_UP()
        holds (False). Both are called every POLL seconds at least and on each new line;
        they may query streams (the lock is re-entrant)."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                if predicate():
                    return True
                if give_up and give_up():
                    return predicate()
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(poll, left))


_hub = None


def hub():
    """The process's one reader thread, started on first use."""
    global _hub
    if _hub is None:
        _hub = Hub()
    return _hub

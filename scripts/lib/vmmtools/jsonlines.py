"""Newline-delimited JSON over a Unix socket: QEMU's QMP and vmm's control socket
(README.md, "Control socket") speak the same request and reply shapes."""

import json
import socket


class CommandError(Exception):
    """The peer answered with an error, or not at all."""


class JsonLines:
    """One connection; call() sends a request and returns its reply's "return"."""

    def __init__(self, path, timeout=60.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.file = self.sock.makefile("rw", encoding="utf-8", newline="\n")

    def close(self):
        self.file.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def read_object(self):
        line = self.file.readline()
        if not line:
            raise CommandError("the connection closed")
        return json.loads(line)

    def call(self, name, **arguments):
        request = {"execute": name}
        if arguments:
            request["arguments"] = arguments
        self.file.write(json.dumps(request) + "\n")
        self.file.flush()
        while True:
            reply = self.read_object()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise CommandError("%s: %s" % (name, reply["error"].get("desc", reply["error"])))
            # QMP's asynchronous events ({"event": ...}) come between replies.


class Qmp(JsonLines):
    """QEMU's monitor: a greeting first, then capabilities negotiation."""

    def __init__(self, path, timeout=60.0):
        super().__init__(path, timeout)
        greeting = self.read_object()
        if "QMP" not in greeting:
            raise CommandError("no QMP greeting on %s" % path)
        self.call("qmp_capabilities")

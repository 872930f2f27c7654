#!/usr/bin/env python3
"""A scripted vhost-user backend for black-box tests of vmm (the frontend).

It listens on SOCKET (or, with --connect, connects to a vmm started with `server`),
serves one frontend, answers what a backend must answer, and misbehaves as told:

  --stray-channel-byte   after SET_OWNER, write one byte of a message header on the
                         backend-request channel and nothing more
  --stall-on REQUEST     never answer REQUEST (e.g. GET_VRING_BASE), nor anything after
  --garbage-after-owner  after SET_OWNER, send 12 bytes of nonsense on the main socket
  --truncate-memfd       on SET_MEM_TABLE, try to shrink the memory fd (vmm seals it)

Each event is one line on stdout ("handshake done", "ftruncate: EPERM", ...), so a
test can wait for it. The standard library only; the wire format is the spec's
(QEMU's docs/interop/vhost-user.rst): a 12-byte header (request, flags, size), the
payload, and fds as SCM_RIGHTS.
"""
import argparse
import array
import os
import socket
import struct
import sys
import time

GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
SET_MEM_TABLE, SET_LOG_BASE = 5, 6
GET_VRING_BASE = 11
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 15, 16, 17
SET_BACKEND_REQ_FD = 21
GET_STATUS = 40
NAMES = {GET_FEATURES: "GET_FEATURES", SET_FEATURES: "SET_FEATURES", SET_OWNER: "SET_OWNER",
         SET_MEM_TABLE: "SET_MEM_TABLE", SET_LOG_BASE: "SET_LOG_BASE",
         GET_VRING_BASE: "GET_VRING_BASE", GET_PROTOCOL_FEATURES: "GET_PROTOCOL_FEATURES",
         SET_PROTOCOL_FEATURES: "SET_PROTOCOL_FEATURES", GET_QUEUE_NUM: "GET_QUEUE_NUM",
         SET_BACKEND_REQ_FD: "SET_BACKEND_REQ_FD", GET_STATUS: "GET_STATUS"}
BY_NAME = {v: k for k, v in NAMES.items()}

FLAG_VERSION, FLAG_REPLY, FLAG_NEED_REPLY = 0x1, 0x4, 0x8
F_VERSION_1, F_PROTOCOL_FEATURES, F_LOG_ALL = 1 << 32, 1 << 30, 1 << 26
PF_MQ, PF_LOG_SHMFD, PF_REPLY_ACK, PF_BACKEND_REQ = 1 << 0, 1 << 1, 1 << 3, 1 << 5
HEADER = struct.Struct("<III")


def say(line):
    print(line, flush=True)


def recv_msg(conn):
    """One message and its fds, or None at end of file."""
    fds = array.array("i")
    data, anc, _, _ = conn.recvmsg(HEADER.size, socket.CMSG_LEN(8 * fds.itemsize))
    if not data:
        return None
    while len(data) < HEADER.size:
        more = conn.recv(HEADER.size - len(data))
        if not more:
            return None
        data += more
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
    request, flags, size = HEADER.unpack(data)
    payload = b""
    while len(payload) < size:
        more = conn.recv(size - len(payload))
        if not more:
            return None
        payload += more
    return request, flags, payload, list(fds)


def reply(conn, request, payload):
    conn.sendall(HEADER.pack(request, FLAG_VERSION | FLAG_REPLY, len(payload)) + payload)


class Backend:
    def __init__(self, args):
        self.args = args
        self.protocol = 0
        self.channel = None
        self.stalled = False

    def answer(self, conn, request, flags, payload, fds):
        """The reply a plain backend gives, or None for requests without one."""
        if request == GET_FEATURES:
            return struct.pack("<Q", F_VERSION_1 | F_PROTOCOL_FEATURES | F_LOG_ALL)
        if request == GET_PROTOCOL_FEATURES:
            return struct.pack("<Q", PF_MQ | PF_LOG_SHMFD | PF_REPLY_ACK | PF_BACKEND_REQ)
        if request == SET_PROTOCOL_FEATURES:
            self.protocol = struct.unpack("<Q", payload[:8])[0]
        elif request == GET_QUEUE_NUM:
            return struct.pack("<Q", 1)
        elif request == GET_VRING_BASE:
            return payload[:4] + struct.pack("<I", 0)
        elif request == GET_STATUS:
            return struct.pack("<Q", 0)
        elif request == SET_BACKEND_REQ_FD and fds:
            self.channel = socket.socket(fileno=os.dup(fds[0]))
        elif request == SET_MEM_TABLE and self.args.truncate_memfd and fds:
            self.truncate(fds[0])
        if flags & FLAG_NEED_REPLY and self.protocol & PF_REPLY_ACK:
            return struct.pack("<Q", 0)
        return None

    def truncate(self, fd):
        try:
            os.ftruncate(fd, 0)
            say("ftruncate: done")
        except OSError as e:
            say("ftruncate: %s" % ("EPERM" if e.errno == 1 else e.strerror))

    def after(self, conn, request):
        if request != SET_OWNER:
            return
        say("handshake done")
        if self.args.stray_channel_byte and self.channel:
            self.channel.send(b"\x02")
            say("stray byte sent on the backend channel")
        if self.args.garbage_after_owner:
            conn.send(b"\xff" * 12)
            say("garbage sent")

    def serve(self, conn):
        while True:
            msg = recv_msg(conn)
            if msg is None:
                say("frontend closed the connection")
                return
            request, flags, payload, fds = msg
            name = NAMES.get(request, "UNKNOWN_%d" % request)
            if self.args.stall_on == name:
                self.stalled = True
                say("stalling on %s" % name)
            if not self.stalled:
                answer = self.answer(conn, request, flags, payload, fds)
                if answer is not None:
                    reply(conn, request, answer)
                self.after(conn, request)
            for fd in fds:
                os.close(fd)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("socket")
    p.add_argument("--connect", action="store_true", help="connect to vmm's server socket")
    p.add_argument("--stray-channel-byte", action="store_true")
    p.add_argument("--stall-on", metavar="REQUEST", choices=sorted(BY_NAME))
    p.add_argument("--garbage-after-owner", action="store_true")
    p.add_argument("--truncate-memfd", action="store_true")
    p.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    args = p.parse_args()
    backend = Backend(args)
    if args.connect:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + args.timeout
        while True:
            try:
                conn.connect(args.socket)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("vu_backend: nobody listening on %s" % args.socket)
                time.sleep(0.05)
    else:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(args.socket)
        listener.listen(1)
        listener.settimeout(args.timeout)
        say("listening")
        conn, _ = listener.accept()
        listener.close()
    conn.settimeout(args.timeout)
    try:
        backend.serve(conn)
    except (socket.timeout, ConnectionError) as e:
        say("connection ended: %s" % e)


if __name__ == "__main__":
    main()

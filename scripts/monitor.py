#!/usr/bin/env python3
"""Sends QEMU human-monitor commands over QMP and prints the answers.

usage: scripts/monitor.py [--socket PATH] COMMAND...
  e.g. scripts/monitor.py "info tlb"  or  scripts/monitor.py stop "info mem" cont

scripts/run.sh opens QMP on build/qmp.sock (CANOPY_BUILD_DIR/qmp.sock).
"""

import json
import os
import socket
import sys


def main(argv):
    build = os.environ.get("CANOPY_BUILD_DIR", "build")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, build, "qmp.sock")
    if len(argv) >= 2 and argv[0] == "--socket":
        path, argv = argv[1], argv[2:]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    try:
        sock.connect(path)
    except OSError as e:
        print(f"monitor.py: {path}: {e} (is scripts/run.sh running?)", file=sys.stderr)
        return 1
    f = sock.makefile("rwb")

    def execute(command, arguments=None):
        request = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        f.write(json.dumps(request).encode() + b"\n")
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(reply["error"].get("desc"))
            return reply.get("return")

    json.loads(f.readline())  # the greeting
    execute("qmp_capabilities")
    for command in argv:
        try:
            out = execute("human-monitor-command", {"command-line": command})
        except RuntimeError as e:
            print(f"monitor.py: {command}: {e}", file=sys.stderr)
            return 1
        sys.stdout.write(out.replace("\r\n", "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

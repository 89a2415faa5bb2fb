"""An independent Sparkplug B decoder/encoder for the Go tests.

It uses Debian's python3-protobuf with sparkplug_b.proto compiled by protoc
at test time (argv[1] is the folder holding sparkplug_b_pb2.py), so the Go
protobuf runtime and its generated code are not the ones judging their own
output. Lines of JSON on stdin, one answer per line on stdout:

  decode: {"payload": base64}  ->  the Payload as a dict (field names of
          the .proto, integers as integers, bytes as base64)
  encode: a Payload as a dict  ->  {"payload": base64}
"""
import base64
import json
import sys

sys.path.insert(0, sys.argv[1])
import sparkplug_b_pb2 as pb  # noqa: E402
from google.protobuf import json_format  # noqa: E402


def conv(msg):
    out = {}
    for fd, val in msg.ListFields():
        rep = fd.label == fd.LABEL_REPEATED
        if fd.type == fd.TYPE_MESSAGE:
            out[fd.name] = [conv(v) for v in val] if rep else conv(val)
        elif fd.type == fd.TYPE_BYTES:
            out[fd.name] = base64.b64encode(val).decode()
        else:
            out[fd.name] = list(val) if rep else val
    return out


def main():
    mode = sys.argv[2]
    for line in sys.stdin:
        m = json.loads(line)
        if mode == "decode":
            p = pb.Payload()
            p.ParseFromString(base64.b64decode(m["payload"]))
            print(json.dumps(conv(p)))
        else:
            p = json_format.ParseDict(m, pb.Payload())
            print(json.dumps({"payload": base64.b64encode(p.SerializeToString()).decode()}))
        sys.stdout.flush()


main()

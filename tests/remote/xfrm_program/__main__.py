"""An XfrmSet on one lab host, policies only (this kernel holds no SA). The peer is a documentation
address no lab traffic uses, so the policies never get in the lab's way."""
import pulumi

from components.remote.resources import HostKey, XfrmSet

config = pulumi.Config()
conn = config.require_object("connection")


class Node:
    connection = conn
    ssh_private_key = None
    host_key = HostKey("host-key", conn, None).hostKey


peer = config.get("peer") or "198.51.100.77"
local = config.require("local")
commands = [
    ["ip", "xfrm", "policy", "add", "src", f"{local}/32", "dst", f"{peer}/32", "dir", "out",
     "tmpl", "src", local, "dst", peer, "proto", "esp", "mode", "transport"],
    ["ip", "xfrm", "policy", "add", "src", f"{peer}/32", "dst", f"{local}/32", "dir", "in",
     "tmpl", "src", peer, "dst", local, "proto", "esp", "mode", "transport"],
]
xfrm = XfrmSet("xfrm", Node, commands, {})
pulumi.export("observed", xfrm.observed)

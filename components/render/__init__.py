"""Pure renderings of a ClusterSpec: file contents and command lines, no I/O.

One module per concern (heartbeat, drbd, ipsec, firewall, agent). Each function takes the spec (and the node
it renders for, when files differ per node) and returns text or argument lists, so that the remote layer
can compare them with what a server holds and tests can compare them with golden files.
"""

MANAGED = "managed by ovh-ha-cluster (Pulumi): `pulumi refresh` reports edits, `pulumi up` reverts them"

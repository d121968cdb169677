"""Heartbeat's cluster messages from scripts, sent whole.

Heartbeat's scripts (mach_down, req_resource, hb_takeover...) talk to the daemon through `ha_clustermsg`, a
function of `/etc/ha.d/shellfuncs` (Debian's resource-agents package) that writes a `>>>` ... `<<<` block to
Heartbeat's FIFO. The packaged function writes one block in several write(2)s. When a node's peer dies while
holding this node's own group, Heartbeat runs mach_down and req_resource at the same moment; their blocks
interleave in the FIFO, Heartbeat rejects both (`NV failure (msgfromsteam)` in its log) and the node never
starts the group: the service stays down although a node is healthy. The VM lab met it on its first
partition after a failover.

The repair keeps the package's file and everything in it: dpkg-divert moves it aside (so an upgrade of
resource-agents lands there, not over ours), and our /etc/ha.d/shellfuncs sources it, then redefines
ha_clustermsg to write each block in one write(2). A FIFO never interleaves writes of up to PIPE_BUF
(4096) bytes, and Heartbeat's messages are a few lines. tests/model/test_clustermsg.py sends from dash and
bash at once into a FIFO and reads the blocks back as Heartbeat does.
"""
from components.render import MANAGED

PATH = "/etc/ha.d/shellfuncs"
DISTRIB = "/etc/ha.d/shellfuncs.distrib"
MARKER = "ovh-ha-cluster: ha_clustermsg sends each message in one write"


def shellfuncs(distrib: str = DISTRIB) -> str:
    """The file that stands at PATH: the package's functions, then ha_clustermsg sent whole."""
    return f"""# {PATH}, {MANAGED}
# {MARKER}. The package's file is {distrib} (dpkg-divert).
. {distrib}

# The whole block in one write(2), so blocks from scripts sending at once cannot interleave in Heartbeat's
# FIFO. `env printf` is coreutils' (stdio, flushed once at exit); bash's builtin writes line by line.
ha_clustermsg() {{
\t_ovh_ha_msg=$(cat -)
\tenv printf '>>>\\n%s\\n<<<\\n' "$_ovh_ha_msg" >> "$HA_FIFO"
}}
"""


def install_command() -> str:
    """Idempotent: divert the package's file once (copied aside first, so PATH never goes missing), then put
    ours in place atomically. Refuses when PATH is already ours but not diverted: sourcing itself would loop."""
    return f"""set -e
f={PATH}; d={DISTRIB}
if [ "$(dpkg-divert --truename "$f")" != "$d" ]; then
  if grep -qF '{MARKER}' "$f"; then
    echo "$f is ovh-ha-cluster's but dpkg-divert no longer sends the package's file to $d:" \\
         "reinstall resource-agents (apt-get install --reinstall resource-agents), then run pulumi up again" >&2
    exit 1
  fi
  cp -p "$f" "$d.tmp" && mv "$d.tmp" "$d"
  dpkg-divert --quiet --local --no-rename --divert "$d" --add "$f"
fi
cat > "$f.tmp" <<'OVH_HA_EOF'
{shellfuncs()}OVH_HA_EOF
chmod 0644 "$f.tmp" && mv "$f.tmp" "$f"
"""


# What `refresh` compares: the diversion and the content of ours.
PROBE = f'echo "diverted to $(dpkg-divert --truename {PATH})"; sha256sum {PATH}'

# `destroy`: the package's file back in place (one rename over ours), and the diversion gone.
REMOVE = (f'if [ "$(dpkg-divert --truename {PATH})" = {DISTRIB} ]; then mv {DISTRIB} {PATH} && '
          f'dpkg-divert --quiet --local --no-rename --remove {PATH}; fi')

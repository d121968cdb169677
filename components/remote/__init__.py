"""The stateful remote-resource layer: SSH sessions (ssh), probes (facts), desired-vs-observed steps (plans)
and the Pulumi dynamic resources built from them (resources)."""

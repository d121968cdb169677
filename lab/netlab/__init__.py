"""The local netns lab: two test hosts (ns11111, ns22222) in network, mount, UTS, IPC and PID namespaces
behind a bridge in a namespace `outside`, each with its own sshd. Entry point: lab/lab.py (see lab/README.md)."""

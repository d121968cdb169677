"""The VM lab: two Debian 12 virtual machines under qemu, named after the tutorial's servers.

Unlike the netns lab they run Debian's own kernel, so DRBD 8.4 and ESP are real. See vmlab/README.md.
"""

"""Fixtures shared by several test folders."""
from tests.support.lab import netns_lab  # noqa: F401  (the netns lab, one per session)

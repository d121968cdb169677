"""An OVH API emulator for tests and the lab: the REST calls this project makes (failover IP, tasks, SMS,
credentials), the legacy SOAP API, real request signing and access rules, and injectable faults.

    from lab.ovh_emulator import start_emulator
    emulator = start_emulator(state={...})      # emulator.endpoint -> "http://127.0.0.1:PORT/1.0"
    ...
    emulator.stop()

`python -m lab.ovh_emulator --help` runs it as a server.
"""
from lab.ovh_emulator.server import Emulator, start_emulator
from lab.ovh_emulator.state import AccountState

__all__ = ["AccountState", "Emulator", "start_emulator"]

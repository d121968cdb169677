import pytest

from lab.ovh_emulator import start_emulator
from tests.ovh.support import new_keys, seed


@pytest.fixture
def keys():
    return new_keys()


@pytest.fixture
def emulator(keys):
    """An emulator on loopback with the test account (IP routed to ns11111, moves instant)."""
    running = start_emulator(state=seed(keys))
    yield running
    running.stop()


@pytest.fixture
def python_ovh(emulator, keys):
    """A python-ovh client, as the library ships, on the emulator."""
    from components.ovh import make_client
    return make_client(emulator.endpoint, keys["application_key"], keys["application_secret"], keys["consumer_key"],
                       timeout=5)

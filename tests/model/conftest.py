import itertools
import os

import pytest

from tests.model.support import require_root, run

_counter = itertools.count()


@pytest.fixture
def netns():
    """A factory of throwaway network namespaces (ovhha-test-<pid>-<n>), all deleted afterwards."""
    require_root("this test")
    created = []

    def make() -> str:
        name = f"ovhha-test-{os.getpid()}-{next(_counter)}"
        result = run(["ip", "netns", "add", name])
        if result.returncode != 0:
            pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
        created.append(name)
        return name

    yield make
    for name in created:
        run(["ip", "netns", "delete", name])

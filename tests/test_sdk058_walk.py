"""Every operation of API 0.58.0 (187), through the official SDK ``kowabunga==0.58.0``, against one Kahuna: the
walk of tests/sdk058/walk.py (accounts by mail, the simulated platform, CRUD with partial updates, maintenance,
region-wide creations, Kwarantine, kMotion). The operationIds answered with a documented 2xx must be the contract's.
"""

from tests.contract import operation_ids
from tests.sdk058 import walk


def test_every_0_58_operation_through_the_0_58_sdk(deployment, platform, sdk058):
    client = sdk058()
    w = walk.walk(deployment, platform, client, "058")
    expected = operation_ids("0.58.0")
    assert len(expected) == 187
    done = client.operations()
    failures = "\n".join(w.failures)
    assert not w.failures and done == expected, f"not done: {sorted(expected - done)}\n{failures}"

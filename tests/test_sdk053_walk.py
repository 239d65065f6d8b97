"""Every operation of API 0.53.2 (167), through the official SDK ``kowabunga==0.53.2`` in this process, against the
Kahuna that the 0.58 SDK has just walked: the same walk (tests/sdk058/walk.py) by the old names, updates sent whole
as a 0.53.2 client does (read, change, send), the 0.58-only operations left out.
"""

from tests.contract import operation_ids
from tests.deployment import MASTER_KEY
from tests.sdk058 import walk


def test_every_0_53_2_operation_through_the_0_53_2_sdk_after_the_0_58_walk(deployment, platform, sdk058):
    first = walk.walk(deployment, platform, sdk058(), "058")
    assert not first.failures, "\n".join(first.failures)
    client = walk.Sdk053(deployment, MASTER_KEY)
    w = walk.walk(deployment, platform, client, "053")
    expected = operation_ids("0.53.2")
    assert len(expected) == 167
    done = client.operations()
    failures = "\n".join(w.failures)
    assert not w.failures and done == expected, f"not done: {sorted(expected - done)}\n{failures}"

"""One test cluster per source checkout, so one checkout's tests cannot break another's.

Test sessions of one checkout share its cluster (`sharing`), which is what keeps a
`make test` at one cluster however many sessions run. Sessions of two checkouts (two
worktrees, a fresh clone beside a working copy) must not: a test that restarts the
apiserver or compacts etcd, or a benchmark on the test cluster, would fail the other
checkout's cluster tests midway. So each checkout gets a slot of its own, recorded in
`clusters/test-checkouts.json` under the cache directory, under a lock: the data dir
`clusters/test-SLOT` and the port base `FIRST_PORT_BASE + PORTS_PER_SLOT * SLOT`.
A checkout keeps its slot (and so its cluster's certificates and etcd) while it
exists; the slot of a checkout that is gone is given to the next new one.

`KUBEDAG_TEST_CLUSTER_DIR` and `KUBEDAG_TEST_PORT_BASE` name another cluster instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from controller.devcluster.layout import ClusterConfig, default_data_dir
from controller.devcluster.sharing import locked

FIRST_PORT_BASE = 20000
PORTS_PER_SLOT = 10
SLOTS = 600
"""Port bases 20000 to 25990: clear of the dev (16443), real-node (26443-26449, its
controller 26480) and benchmark (28443-28849) clusters, and below Linux's ephemeral range
(32768 and up), where an outgoing connection could take a cluster's port."""


def checkout_cluster_config(
    checkout: Path, *, environ: Mapping[str, str] | None = None
) -> ClusterConfig:
    """The test cluster of the source checkout at `checkout`, or the one the environment
    names."""
    env = os.environ if environ is None else environ
    data_dir = env.get("KUBEDAG_TEST_CLUSTER_DIR")
    port_base = env.get("KUBEDAG_TEST_PORT_BASE")
    if data_dir or port_base:
        if not (data_dir and port_base):
            raise ValueError(
                "set KUBEDAG_TEST_CLUSTER_DIR and KUBEDAG_TEST_PORT_BASE together: a cluster "
                "is a data dir and its ports"
            )
        return ClusterConfig(data_dir=Path(data_dir), port_base=int(port_base))
    slot = checkout_slot(checkout)
    return ClusterConfig(
        data_dir=default_data_dir(f"test-{slot}"),
        port_base=FIRST_PORT_BASE + PORTS_PER_SLOT * slot,
    )


def checkout_slot(checkout: Path) -> int:
    """The slot of `checkout`: the one it has, or the lowest one free."""
    key = str(checkout.resolve())
    registry = default_data_dir("test-checkouts.json")
    with locked(registry.parent):
        slots = _read(registry)
        if key in slots:
            return slots[key]
        # A checkout that is gone gives its slot back.
        slots = {path: slot for path, slot in slots.items() if Path(path).exists()}
        taken = set(slots.values())
        free = next((slot for slot in range(SLOTS) if slot not in taken), None)
        if free is None:
            raise RuntimeError(
                f"all {SLOTS} test cluster slots in {registry} belong to existing checkouts; "
                "remove entries of checkouts you no longer test"
            )
        slots[key] = free
        tmp = registry.with_suffix(".tmp")
        tmp.write_text(json.dumps(slots, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, registry)
        return free


def _read(registry: Path) -> dict[str, int]:
    try:
        data = json.loads(registry.read_text())
    except FileNotFoundError:
        return {}
    return {str(path): int(slot) for path, slot in data.items()}

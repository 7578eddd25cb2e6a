"""Epoch reconcile: after the archive was restored from its replica, put back
what the replica missed (the last seconds before the crash).

The agent asks the server which revision it holds of each record the device
has (ids and revs only, in chunks), queues again only what is missing or
older, and then syncs normally; idempotent pushes make a repeat harmless.
"""

from __future__ import annotations

import orjson

from .store import Store
from .transport import Transport

CHUNK = 5000


def reconcile(store: Store, transport: Transport) -> dict[str, int]:
    customers, visits = store.manifest()
    have_c: dict[str, int] = {}
    have_v: dict[str, int] = {}
    epoch = ""
    for i in range(0, max(len(customers), len(visits), 1), CHUNK):
        answer = transport.request("POST", "/v1/reconcile", payload=orjson.dumps({
            "customers": customers[i : i + CHUNK], "visits": visits[i : i + CHUNK],
        }))
        have_c.update(answer["customers"])
        have_v.update(answer["visits"])
        epoch = answer["archive_epoch"]
    return store.requeue_missing(have_c, have_v, epoch)

"""Stopping a node (issue 18 item 3): calls in flight get a grace period, then every queue the
node holds is handed back at once (another node need not wait a minute for the lease to lapse),
and nothing it held is lost; on both stores."""

from __future__ import annotations

from collections.abc import Callable

from dip.store import Store
from dip.store.reports import QueueState
from dip.tools.client import DipClient
from dip.tools.testing import AdminClient, RunningDip, WebhookReceiver
from tests.helpers import SUP, consumption, in_store, onboard_all


def test_a_stopping_node_hands_back_the_queues_it_holds(dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory(shutdown_grace_seconds=0.2)
    with AdminClient(dip.url, dip.admin_key) as admin, WebhookReceiver() as hook:
        hook.always(201, delay=30)  # a recipient that takes its time: the node holds its queue meanwhile
        cast = onboard_all(admin)
        with DipClient(dip.url, cast["SUP"]) as sup:
            assert sup.register_webhook("IF-021", hook.url).status_code == 201
        with DipClient(dip.url, cast["SDS"]) as sds:
            assert sds.send("IF-021", consumption(sds, 2)).status_code == 201
        hook.wait_for(lambda calls: len(calls) == 1)  # the call is in flight

        async def queues(store: Store) -> list[QueueState]:
            return await store.queue_overview(SUP)

        (held,) = [q for q in in_store(dip, queues) if q.interface_id == "IF-021"]
        assert held.lease_owner is not None  # leased for the webhook timeout and more (60 s)
        dip.__exit__(None, None, None)
    (after,) = [q for q in in_store(dip, queues) if q.interface_id == "IF-021"]
    assert after.lease_owner is None and after.lease_until is None  # handed back on stopping
    assert after.pending == 2  # the call cut short delivered nothing: both still waiting

"""The archive's store operations (selection, pages, requeue, redrive) on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from dip.archive import pages
from dip.archive.selection import RequestProblem
from dip.queue import DeliveryKind, DeliveryState, publication_queue
from dip.store import DeliveryRow, MessageRow, Store
from dip.store.archive import START, QueuedCopy, Redrive, ReplayPage, Selection
from dip.store.base import Settlement

NOW = 1_790_000_000_000_000
LATER = NOW + 10_000_000  # when the queues are claimed: after every acceptance
SUP, MDS, SDS = "1000000001", "1400000001", "1300000001"
Q_SUP, Q_MDS = publication_queue(SUP, "IF-021"), publication_queue(MDS, "IF-021")


def message(n: int, mpan: str = "1200000000009", event: str = "[ActivePower]", version: str = "011") -> MessageRow:
    return MessageRow(f"T-IF-021-{SDS}-SDS-20261123-{n:024x}", "IF-021", event, version, SDS, "SDS", None,
                      f"S-IF-021-{SDS}-SDS-20261123-{n:x}", f"CI-20261123-{n:x}", mpan, NOW + n * 1000,
                      b'{"n": %d}' % n)


async def accept(store: Store, rows: list[MessageRow], recipients: tuple[str, ...] = (SUP, MDS)) -> None:
    deliveries = [[DeliveryRow(publication_queue(r, "IF-021"), m.transaction_id, r, "SUP" if r == SUP else "MDS",
                               DeliveryKind.SECONDARY if r == SUP else DeliveryKind.ALWAYS, m.received_at)
                   for r in recipients] for m in rows]
    assert await store.insert_messages(rows, deliveries) == []


def everything(queue: str = Q_SUP, **narrow: object) -> Selection:
    return Selection(queue, 0, NOW * 2, **narrow)  # type: ignore[arg-type]


async def tids(store: Store, selection: Selection, limit: int = 1000) -> list[str]:
    return [s.transaction_id for s in await store.select(selection, START, limit)]


async def test_a_selection_is_one_recipients_originals_on_one_channel_in_acceptance_order(store: Store) -> None:
    rows = [message(n) for n in range(5)]
    await accept(store, rows[:3])
    await accept(store, rows[3:], recipients=(MDS,))  # SUP is not a recipient of these
    assert await tids(store, everything()) == [r.transaction_id for r in rows[:3]]
    assert await tids(store, everything(Q_MDS)) == [r.transaction_id for r in rows]
    assert await tids(store, everything(publication_queue(SUP, "IF-005"))) == []
    first = (await store.select(everything(), START, 1))[0]
    assert (first.role, first.kind, first.accepted_at) == ("SUP", DeliveryKind.SECONDARY, rows[0].received_at)
    assert await store.count_selected(everything()) == 3


async def test_every_filter_narrows_the_selection(store: Store) -> None:
    rows = [message(0), message(1, mpan="1200000000010"), message(2, event="[ReactivePower]"),
            message(3, version="012"), message(4)]
    await accept(store, rows)
    t = [r.transaction_id for r in rows]
    assert await tids(store, everything(mpan="1200000000010")) == [t[1]]
    assert await tids(store, everything(event_code="[ReactivePower]")) == [t[2]]
    assert await tids(store, everything(version="012")) == [t[3]]
    assert await tids(store, everything(mpan="1200000000009", event_code="[ActivePower]", version="011")) == [
        t[0], t[4]]
    # a time range is inclusive at both ends
    assert await tids(store, Selection(Q_SUP, rows[1].received_at, rows[3].received_at)) == t[1:4]
    assert await tids(store, Selection(Q_SUP, rows[1].received_at, rows[3].received_at, mpan="1200000000009")) == [
        t[2], t[3]]
    # transaction IDs, narrowed by the rest; an ID of another recipient's or unknown is not there
    by_ids = everything(transaction_ids=(t[4], t[0], "T-unknown"))
    assert await tids(store, by_ids) == [t[0], t[4]]
    assert await tids(store, by_ids._replace(start=rows[2].received_at)) == [t[4]]
    assert await store.count_selected(by_ids) == 2


async def test_a_cursor_pages_through_the_selection(store: Store) -> None:
    rows = [message(n) for n in range(7)]
    await accept(store, rows)
    pages, after = [], START
    while page := await store.select(everything(), after, 3):
        pages.append([s.transaction_id for s in page])
        after = (page[-1].accepted_at, page[-1].id)
    assert pages == [[r.transaction_id for r in rows[i:i + 3]] for i in (0, 3, 6)]


async def test_replay_pages_are_kept_until_they_expire(store: Store) -> None:
    page = ReplayPage(SUP, Q_SUP, "hash", NOW, 5, NOW + 10)
    await store.put_replay_page("token-1", page)
    assert await store.replay_page("token-1") == page
    assert await store.replay_page("token-2") is None
    assert await store.drop_expired_replay_pages(NOW + 5) == 0
    assert await store.drop_expired_replay_pages(NOW + 11) == 1
    assert await store.replay_page("token-1") is None


async def test_a_requeue_is_appended_by_its_lease_holder_and_reports_progress(store: Store) -> None:
    rows = [message(n) for n in range(3)]
    await accept(store, rows, recipients=(SUP,))
    selection = everything()
    await store.create_requeue("RQ-1", selection, SUP, "IF-021", SUP, "{}", 3, NOW)
    claim = await store.claim_requeue("node-a", NOW, 60_000_000)
    assert claim is not None and claim.id == "RQ-1" and (claim.after_at, claim.after_id) == START
    assert await store.claim_requeue("node-b", NOW, 60_000_000) is None  # leased
    found = await store.select(selection, START, 2)
    copies = [QueuedCopy(Q_SUP, f.transaction_id, SUP, f.role, f.kind, NOW + 1, None, f"T-NEW-{i}", "RQ-1", None,
              f.retention_days)
              for i, f in enumerate(found)]
    assert not await store.append_requeue(claim, "node-b", copies, (found[-1].accepted_at, found[-1].id), False,
                                          NOW + 1, NOW + 1)  # not the lease holder: nothing written
    state = await store.requeue_state("RQ-1")
    assert state is not None and (state.total, state.appended, state.done, state.queued) == (3, 0, False, 0)
    assert await store.append_requeue(claim, "node-a", copies, (found[-1].accepted_at, found[-1].id), True,
                                      NOW + 1, NOW + 1)
    state = await store.requeue_state("RQ-1")
    assert state is not None and (state.appended, state.done, state.queued, state.settled) == (2, True, 2, 0)
    assert await store.claim_requeue("node-b", NOW + 120_000_000, 60_000_000) is None  # done: nobody takes it
    # the copies are at the end of the queue, after the originals, with their new transaction IDs
    (queue_claim,) = await store.claim("w", LATER, 60_000_000, 10)
    pending = await store.pending(queue_claim.queue, 10)
    assert [(p.transaction_id, p.replay_id) for p in pending] == [
        *((r.transaction_id, None) for r in rows), (rows[0].transaction_id, "T-NEW-0"),
        (rows[1].transaction_id, "T-NEW-1")]
    assert pending[-1].payload == rows[1].payload  # the archived message comes with the copy
    # a copy is not an original: the selection does not find it again
    assert await store.count_selected(selection) == 3
    # delivered (the watermark) and dead: settled; the dead one was given up
    settled = [Settlement(p.id, DeliveryState.DELIVERED, 201, None) for p in pending[:-1]]
    settled.append(Settlement(pending[-1].id, DeliveryState.DEAD, None, "dead-lettered"))
    assert await store.settle(queue_claim.queue, "w", settled, NOW, 0, [], NOW + 2)
    state = await store.requeue_state("RQ-1")
    assert state is not None and (state.queued, state.settled, state.given_up) == (2, 2, 1)
    assert await store.requeue_state("RQ-unknown") is None


async def test_redrive_puts_undelivered_deliveries_back_as_they_were(store: Store) -> None:
    rows = [message(n) for n in range(4)]
    await accept(store, rows, recipients=(SUP,))
    (claim,) = await store.claim("w", LATER, 60_000_000, 10)
    pending = await store.pending(claim.queue, 10)
    outcome = [DeliveryState.DEAD, DeliveryState.REJECTED, DeliveryState.DELIVERED, DeliveryState.FAILED]
    settled = [Settlement(p.id, s, 400, "x") for p, s in zip(pending, outcome, strict=True)]
    assert await store.settle(claim.queue, "w", settled, NOW, 0, [], NOW + 1)
    everyone = Redrive(("dead", "rejected"), None, None, 0, NOW * 2)
    assert await store.redrive(Redrive(("dead",), "1999999999", None, 0, NOW * 2), 100, NOW + 2) == 0
    assert await store.redrive(Redrive(("dead",), None, "IF-005", 0, NOW * 2), 100, NOW + 2) == 0
    assert await store.redrive(Redrive(("dead",), None, None, 0, NOW - 1), 100, NOW + 2) == 0  # queued later
    assert await store.redrive(everyone, 1, NOW + 2) == 1  # at most the limit
    assert await store.redrive(everyone, 100, NOW + 2) == 1
    assert await store.redrive(everyone, 100, NOW + 2) == 0  # the redriven ones are no longer undelivered
    history = {(h.state, h.accepted_at) for h in await store.delivery_history(rows[0].transaction_id)}
    assert history == {("redriven", rows[0].received_at), ("pending", NOW + 2)}
    (claim,) = await store.claim("w", LATER, 60_000_000, 10)
    again = await store.pending(claim.queue, 10)
    assert [(p.transaction_id, p.replay_id, p.accepted_at) for p in again] == [
        (rows[0].transaction_id, None, NOW + 2), (rows[1].transaction_id, None, NOW + 2)]
    # the failed one stays where it was; a redrive copy is not an original either
    assert [u.transaction_id for u in await store.undelivered("failed")] == [rows[3].transaction_id]
    assert await store.count_selected(everything()) == 4


async def test_a_continuation_token_is_refused_once_expired_or_by_another_caller(store: Store) -> None:
    token = await pages.next_page(store, SUP, Q_SUP, "digest", (NOW, 7), NOW)
    assert await pages.resume(store, token, SUP, Q_SUP, "digest", NOW + 1) == (NOW, 7)
    assert await pages.resume(store, None, SUP, Q_SUP, "digest", NOW) == START
    expired = NOW + pages.TOKEN_SECONDS * 1_000_000 + 1
    for args in ((token, SUP, Q_SUP, "digest", expired), (token, MDS, Q_SUP, "digest", NOW),
                 (token, SUP, Q_MDS, "digest", NOW), (token, SUP, Q_SUP, "another", NOW),
                 ("00000000-0000-0000-0000-000000000000", SUP, Q_SUP, "digest", NOW)):
        with pytest.raises(RequestProblem, match="X-Continuation-Token"):
            await pages.resume(store, *args)

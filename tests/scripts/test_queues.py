"""The scripts around the queues: fetch, the delayed-task mover, the orphan reaper, the queue
statistics, listings and their trim, and the dead-letter list."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import redis

from contracts import records, scripts
from contracts.messages import HEADERS
from contracts.records import State
from contracts.scripts import Named
from tests.scripts.conftest import NOW, TASK_ID, indexes, listed, message, run, tag_of
from tests.scripts.test_execution import REC, requeued, start
from tests.scripts.test_submit_and_cancel import submit

DEFAULT_LISTS = records.queue_lists("default")


def fetch(r: redis.Redis) -> Any:
    return run(r, scripts.FETCH, lists=DEFAULT_LISTS, now=1234.5, worker="w1#a")


def test_fetch_pops_and_records_in_kombus_layout_with_an_inflight_entry(r: redis.Redis) -> None:
    submit(r)
    sent = message()
    assert fetch(r) == ["default", sent, 1]
    tag = tag_of(sent)
    assert json.loads(str(r.hget(records.UNACKED, tag))) == [json.loads(sent), "", "default"]
    assert r.zscore(records.UNACKED_INDEX, tag) == 1234.5
    assert r.hget(records.INFLIGHT, tag) == records.inflight_entry("default", "w1#a", TASK_ID)
    assert fetch(r) is None  # every list empty: the transport blocks in BRPOP instead


def test_fetch_leaves_a_message_without_kombus_fields_to_kombu(r: redis.Redis) -> None:
    r.lpush("default", "not json")
    assert fetch(r) == ["default", "not json", 0]
    assert r.hlen(records.UNACKED) == 0 and r.hlen(records.INFLIGHT) == 0


def test_the_mover_queues_due_messages_with_a_fresh_publish_stamp(r: redis.Redis) -> None:
    submit(r, "due", due=NOW - 1)
    submit(r, "later", due=NOW + 60_000)
    assert run(r, scripts.MOVE_DUE, now=NOW, limit=10) == 1
    (queued,) = r.lrange("default", 0, -1)
    assert json.loads(queued)["headers"]["kt_published_at"] == NOW
    assert json.loads(queued)["headers"]["id"] == "due"
    assert r.zrange(records.DELAYED, 0, -1) == ["later"]
    assert r.hkeys(records.DELAYED_MESSAGES) == ["later"]


def test_queue_stats_count_in_flight_work_without_reading_messages(r: redis.Redis) -> None:
    submit(r, "a")
    submit(r, "b")
    fetch(r)  # "a" is now in flight
    r.hset(records.INFLIGHT, "stale-tag", records.inflight_entry("default", "w1#a", "gone"))
    r.zadd(records.WORKERS, {"w1": 100})
    r.set(records.worker_key("w1"), '{"hostname":"w1"}')
    before = r.info("commandstats")

    stats = run(
        r, scripts.QUEUE_STATS, lists=DEFAULT_LISTS, lists_per_queue=len(DEFAULT_LISTS),
        workers_since=50,
    )  # fmt: skip

    assert stats == [[[1, NOW]], ["default"], 0, 0, ['{"hostname":"w1"}']]
    assert not r.hexists(records.INFLIGHT, "stale-tag")  # its message is not unacknowledged
    after = r.info("commandstats")
    for command in ("hvals", "hget", "hmget"):  # no message in flight was read
        calls = f"cmdstat_{command}"
        assert after.get(calls, {}).get("calls", 0) == before.get(calls, {}).get("calls", 0)


def reap(r: redis.Redis, now: int, task_id: str = TASK_ID) -> Any:
    return run(
        r, scripts.REAP, record=records.record_key(task_id), list="default", id=task_id, now=now,
        orphan_after_ms=1000, message=message(f"{task_id}-copy"), slack_ms=100,
    )  # fmt: skip


def test_the_reaper_queues_only_a_task_whose_message_is_nowhere(r: redis.Redis) -> None:
    submit(r)
    assert reap(r, NOW + 10) == "recent"
    assert reap(r, NOW + 5000) == "queued"  # its own message is still in the list
    fetch(r)
    assert reap(r, NOW + 5000) == "in-flight"
    r.delete(records.INFLIGHT)  # as if the worker died between pop and record
    assert reap(r, NOW + 5000) == "requeued"
    (copy,) = r.lrange("default", 0, -1)
    assert json.loads(copy)["headers"]["kt_published_at"] == NOW  # the task's own age
    assert r.hget(REC, "queued_at") == str(NOW + 5000)
    start(r)
    assert reap(r, NOW + 60_000) == "not-waiting"


def test_the_reaper_leaves_a_delayed_task(r: redis.Redis) -> None:
    submit(r, due=NOW + 1)
    assert reap(r, NOW + 5000) == "delayed"


def test_trim_forgets_old_entries_whose_record_is_gone(r: redis.Redis) -> None:
    for task_id in ("old-gone", "old-kept", "new-gone"):
        submit(r, task_id)
    r.zadd(records.TASKS_INDEX, {"old-gone": NOW - 10, "old-kept": NOW - 10, "new-gone": NOW + 10})
    r.delete(records.record_key("old-gone"), records.record_key("new-gone"))
    assert run(r, scripts.TRIM, indexes=[records.TASKS_INDEX], cutoff=NOW, budget=100) == 1
    assert set(r.zrange(records.TASKS_INDEX, 0, -1)) == {"old-kept", "new-gone"}


def test_a_listing_pages_newest_first_and_drops_expired_entries(r: redis.Redis) -> None:
    for i, task_id in enumerate(("t-a", "t-b", "t-c")):
        submit(r, task_id)
        for key in listed(State.PENDING):
            r.zadd(key, {task_id: NOW + i})
    r.delete(records.record_key("t-b"))
    pending = records.state_index(State.PENDING)
    listing: dict[str, Named] = {"max_score": "+inf", "skip": 0, "limit": 1, "scan_cap": 10}
    score, skip, items = run(r, scripts.LIST, index=pending, **listing)
    assert [i[0] for i in items] == ["t-c"]
    _, _, items = run(r, scripts.LIST, index=pending, **{**listing, "max_score": score,
                                                          "skip": skip})  # fmt: skip
    assert [i[0] for i in items] == ["t-a"]  # t-b's record expired: dropped from the filter
    assert r.zscore(pending, "t-b") is None
    assert r.zscore(records.TASKS_INDEX, "t-b") is not None  # the tombstone stays


def dead_letter(r: redis.Redis) -> None:
    submit(r)
    start(r, max_deliveries=0)
    requeued(r)
    assert start(r, "tag-2", token="call-2", max_deliveries=0)[0] == "deadletter"


def requeue(r: redis.Redis, token: str) -> Any:
    return run(
        r, scripts.DEADLETTER_REQUEUE, record=REC, id=TASK_ID, list="default",
        message=message("fresh"), now=NOW + 20, token=token,
    )  # fmt: skip


def test_a_dead_letter_requeued_waits_again_and_a_resent_call_says_so(r: redis.Redis) -> None:
    dead_letter(r)
    assert requeue(r, "call-9") == "requeued"
    record = r.hgetall(REC)
    assert (record["state"], record["deliveries"]) == ("PENDING", "0")
    assert not {"error_type", "finished_at"} & set(record)
    assert r.ttl(REC) == -1
    assert indexes(r) == listed(State.PENDING)
    assert r.lrange("default", 0, -1) == [message("fresh"), message()]
    assert requeue(r, "call-9") == "requeued"  # the same call, re-sent
    assert requeue(r, "call-10") == "missing"  # another call: it is not dead any more
    assert r.llen("default") == 2


def test_a_dead_letter_discarded_expires_and_a_resent_call_says_so(r: redis.Redis) -> None:
    dead_letter(r)
    discard: dict[str, Named] = {"record": REC, "id": TASK_ID, "ttl": 30}
    assert run(r, scripts.DEADLETTER_DISCARD, token="call-9", **discard) == "discarded"
    assert r.zcard(records.DEADLETTER) == 0 and 0 < r.ttl(REC) <= 30
    assert run(r, scripts.DEADLETTER_DISCARD, token="call-9", **discard) == "discarded"
    assert run(r, scripts.DEADLETTER_DISCARD, token="call-10", **discard) == "missing"


def test_scripts_name_fields_keys_states_and_headers_only_through_the_prelude() -> None:
    """contracts/records.py and contracts/messages.py define them once; a literal in a script
    would be a second definition that a rename leaves behind."""
    defined = {
        *records.FIELDS.values(), *(s.value for s in State), *records.FIXED_KEYS.values(),
        *HEADERS.values(),
    }  # fmt: skip
    folder = Path(scripts.__file__).parent / "lua"
    for path in sorted(folder.glob("*.lua")):
        code = "\n".join(line.split("--", 1)[0] for line in path.read_text().splitlines())
        literals = re.findall(r"'([^']*)'|\"([^\"]*)\"", code)
        found = {text for pair in literals for text in pair if text}
        assert not found & defined, f"{path.name} spells out {sorted(found & defined)}"
        assert not [t for t in found if t.startswith("kt:")], path.name

"""Celery protocol-2 messages in the envelope of kombu's Redis transport.

The API writes messages straight into the queue lists (atomically with the task record) and
the worker re-publishes retries the same way, so both build them here. The publish time is a
plain integer header that the delayed-task mover rewrites in place (a Lua pattern) and the
queue metrics read without decoding the message. Each message gets a fresh kombu delivery tag:
it names that copy of the task's message, in the record's lease (`Field.TAG`) as in kombu's
`unacked` hash.

A message names the catalogue version its arguments were validated against (`kt_version`) and
how often a worker that could not validate them passed it on (`kt_handoffs`); the rule for a
rolling update is in worker/lifecycle.py (`RecordedTask._handoff`) and docs/tasks.md.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping

import orjson

from contracts.catalogue import PRIORITY_MAX, PRIORITY_STEPS
from contracts.records import Field, queue_lists

PUBLISHED_AT_HEADER = "kt_published_at"
VERSION_HEADER = "kt_version"
HANDOFFS_HEADER = "kt_handoffs"
HEADERS = {"published_at": PUBLISHED_AT_HEADER}  # for the Lua prelude (contracts.scripts)
ORIGIN = "kubetasks"


def transport_priority(priority: int) -> int:
    """Client priority (higher first) -> the transport's step (lower first)."""
    inverted = PRIORITY_MAX - priority
    return max(step for step in PRIORITY_STEPS if step <= inverted)


def client_priority(transport: int) -> int:
    """A transport step -> the highest client priority that maps to it."""
    return PRIORITY_MAX - transport


def queue_list_for(queue: str, priority: int) -> str:
    return queue_lists(queue)[PRIORITY_STEPS.index(transport_priority(priority))]


def build_message(
    name: str,
    task_id: str,
    args: dict[str, object],
    *,
    queue: str,
    priority: int,
    retries: int,
    published_at_ms: int,
    version: str | None,
    handoffs: int = 0,
) -> tuple[str, bytes]:
    """Return (Redis list, message bytes) for one copy of a task's message; `version` is the
    catalogue version (TaskSpec.version) the arguments were validated against, None if unknown."""
    tag = uuid.uuid4().hex
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    body = orjson.dumps([[args], {}, embed])
    headers = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": retries,
        # No limits in the message: each worker enforces the ones it was configured with, the
        # same ones it checked against the visibility timeout at start.
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": f"({name} args)",
        "kwargsrepr": "{}",
        "origin": ORIGIN,
        "ignore_result": True,
        PUBLISHED_AT_HEADER: published_at_ms,
        VERSION_HEADER: version,
        HANDOFFS_HEADER: handoffs,
    }
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": transport_priority(priority),
            "body_encoding": "base64",
            "delivery_tag": tag,
        },
    }
    return queue_list_for(queue, priority), orjson.dumps(envelope)


def message_for_record(
    task_id: str, record: Mapping[str, str], published_at_ms: int
) -> tuple[str, bytes]:
    """A fresh message for a task whose own message is gone (dead-lettered, or lost). The record
    does not keep the version: whichever worker takes the message validates the arguments."""
    return build_message(
        record[Field.NAME],
        task_id,
        orjson.loads(record[Field.ARGS]),
        queue=record[Field.QUEUE],
        priority=int(record[Field.PRIORITY]),
        retries=int(record[Field.RETRIES]),
        published_at_ms=published_at_ms,
        version=None,
    )

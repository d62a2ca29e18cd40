"""`ChatSlots` (`services/agent/slots.py`): chats in flight are bounded per person (429) and per process (503),
and a slot is given back once, however often the stream's end releases it."""

from __future__ import annotations

import pytest

from services.agent.slots import ChatSlots
from services.common.errors import ApiError


def test_a_person_past_their_bound_gets_429_and_others_still_get_a_slot() -> None:
    slots = ChatSlots(total=3, per_user=1)
    slots.take("alice")
    with pytest.raises(ApiError) as refused:
        slots.take("alice")
    assert (refused.value.status, refused.value.error, refused.value.headers) == (429, "too_many_chats", {"retry-after": "5"})
    slots.take("bob")
    assert slots.in_flight == 2


def test_a_full_process_gets_503_before_the_per_person_bound() -> None:
    slots = ChatSlots(total=1, per_user=1)
    slots.take("alice")
    with pytest.raises(ApiError) as refused:
        slots.take("alice")
    assert (refused.value.status, refused.value.error, refused.value.headers) == (503, "busy", {"retry-after": "5"})


def test_a_slot_is_given_back_once() -> None:
    slots = ChatSlots(total=2, per_user=2)
    release = slots.take("alice")
    slots.take("alice")
    release()
    release()  # the stream's end may release twice (finished, then closed): only one slot comes back
    assert slots.in_flight == 1
    slots.take("alice")
    with pytest.raises(ApiError):
        slots.take("alice")

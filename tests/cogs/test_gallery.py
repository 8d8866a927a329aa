"""The pure parts of `/imagine count` and `draft`: distinct seeds, N requests, the failure line, the gallery."""

import random
from datetime import UTC, datetime

from bot.engine.groups import Group, GroupResult
from bot.models import MAX_SEED, build_request
from cogs._gallery import distinct_seeds, failure_line, group_requests


def test_a_given_seed_and_the_next_ones_else_distinct_random_seeds():
    assert distinct_seeds(4, 7, consecutive=True) == [7, 8, 9, 10]
    assert distinct_seeds(2, MAX_SEED, consecutive=True) == [MAX_SEED, 0]
    drawn = distinct_seeds(4, 5, consecutive=False, rng=random.Random(1))
    assert drawn[0] == 5 and len(set(drawn)) == 4


def test_group_requests_differ_only_in_seed_or_nonce():
    seeded = build_request(model="flux-2-pro", prompt="a fox", aspect_ratio="16:9", seed=100)
    copies = group_requests(seeded, 3, seed_given=True)
    assert [r.seed for r in copies] == [100, 101, 102] and [r.bfl_payload()["seed"] for r in copies] == [100, 101, 102]
    assert {r.aspect_ratio for r in copies} == {"16:9"} and len({r.cache_key() for r in copies}) == 3
    flux3 = build_request(model="flux-3-image", prompt="a fox", aspect_ratio=None, seed=None)
    plain = group_requests(flux3, 4, seed_given=False)
    assert all("seed" not in r.bfl_payload() for r in plain)
    assert len({r.cache_key() for r in plain}) == 4  # four new images: never one cache hit for all
    assert {r.estimated_cost_micros for r in plain} == {flux3.estimated_cost_micros}


def _result(failed, refunded, size=4):
    group = Group(
        id=1, guild_id=1, channel_id=1, user_id=1, size=size, draft=False, final_model=None, final_options={},
        application_id=None, interaction_token=None, private=False, poster=None, posted_at=None,
        result_channel_id=None, result_message_id=None, created_at=datetime.now(UTC),
    )  # fmt: skip
    return GroupResult(group, [], failed=failed, refunded=refunded, cancelled=0, prompt="p", model="flux-2-pro")


def test_the_failure_line_says_how_many_failed_and_whether_they_were_refunded():
    assert failure_line(_result(0, 0)) == ""
    assert failure_line(_result(1, 1)) == "1 of 4 images failed: refunded."
    assert failure_line(_result(2, 1)) == "2 of 4 images failed (1 refunded)."
    assert "not refunded" in failure_line(_result(1, 0))

"""Led queries return exactly what the plain query returns, long $in lists cut or not."""

from __future__ import annotations

import uuid

from fhir_server.storage.client import Mongo
from fhir_server.storage.lead import count_led, distinct_led, find_in, find_led


async def test_led_query_with_a_long_in_matches_the_plain_query(mongo: Mongo) -> None:
    name = f"lead_{uuid.uuid4().hex[:8]}"
    coll = mongo.db[name]
    await coll.create_index("p")
    docs = [
        {"_id": "a", "p": "x", "comp": ["p1"]},
        {"_id": "b", "p": "x", "comp": ["p999", "p3"]},  # allowed through its second patient only
        {"_id": "c", "p": "x", "comp": ["p998"]},  # not allowed
        {"_id": "d", "p": "y", "comp": ["p1"]},  # not led
        {"_id": "e", "p": "x", "comp": []},
    ]
    await coll.insert_many(docs)
    allowed = [f"p{i}" for i in range(500)]
    query = {
        "$and": [{"p": "x"}, {"$or": [{"comp": {"$in": allowed}}, {"comp": {"$size": 0}}]}],
        "del": {"$ne": True},
    }
    plain = sorted([d["_id"] async for d in coll.find(query)])
    led = sorted(d["_id"] for d in await find_led(mongo.db, name, query, {"p": "x"}))
    assert plain == led == ["a", "b", "e"]
    assert await count_led(mongo.db, name, query, {"p": "x"}) == 3
    assert sorted(await distinct_led(mongo.db, name, "comp", query, {"p": "x"})) == ["p1", "p3", "p999"]
    await coll.drop()


async def test_long_lists_under_nor_and_many_matches_keep_the_plain_results(mongo: Mongo) -> None:
    name = f"lead_{uuid.uuid4().hex[:8]}"
    coll = mongo.db[name]
    await coll.create_index("p")
    # 150 candidates (more than the ids a lead may list), every third one allowed, some blocked.
    docs = [{"_id": f"d{i:03}", "p": "x", "comp": [f"p{i}"]} for i in range(150)]
    await coll.insert_many(docs)
    allowed = [f"p{i}" for i in range(0, 3000, 3)]
    blocked = [f"p{i}" for i in range(0, 3000, 5)]
    query = {"p": "x", "comp": {"$in": allowed}, "$nor": [{"comp": {"$in": blocked}}]}
    plain = sorted([d["_id"] async for d in coll.find(query)])
    assert len(plain) == 40  # multiples of 3 below 150 that are not multiples of 5
    led = sorted(d["_id"] for d in await find_led(mongo.db, name, query, {"p": "x"}))
    assert led == plain
    assert await count_led(mongo.db, name, query, {"p": "x"}) == 40
    # Few matches: led by their ids.
    few = {**query, "_id": {"$lte": "d010"}}
    assert sorted(d["_id"] for d in await find_led(mongo.db, name, few, {"p": "x"})) == [
        "d003",
        "d006",
        "d009",
    ]
    await coll.drop()


async def test_a_long_list_read_in_short_ones_finds_each_match_once(mongo: Mongo) -> None:
    name = f"lead_{uuid.uuid4().hex[:8]}"
    coll = mongo.db[name]
    await coll.create_index("comp")
    # d0 holds values of the first and of the last short list; d2 fails the extra condition.
    docs = [
        {"_id": "d0", "comp": ["p0", "p299"], "k": 1},
        {"_id": "d1", "comp": ["p150"], "k": 1},
        {"_id": "d2", "comp": ["p151"], "k": 2},
        {"_id": "d3", "comp": ["q1"], "k": 1},
    ]
    await coll.insert_many(docs)
    values = [f"p{i}" for i in range(300)]
    plain = sorted([d["_id"] async for d in coll.find({"comp": {"$in": values}, "k": 1})])
    found = await find_in(mongo.db, name, "comp", values, {"k": 1}, projection={"_id": 1})
    assert sorted(d["_id"] for d in found) == plain == ["d0", "d1"]
    assert await find_in(mongo.db, name, "comp", []) == []
    await coll.drop()

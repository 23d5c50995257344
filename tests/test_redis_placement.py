"""Where the Redis backend puts things (sharding.py): the hash, checked
against values computed independently of this code, the placement rules,
and two processes agreeing on them."""

import json
import os
import re
import subprocess
import sys

from django.test import SimpleTestCase

from channels.backends import create_backend
from channels.backends.redis.sharding import Placement, jump_hash, name_hash, shard_for
from channels.names import new_name, process_wildcard
from tests.support.redis_servers import backend_config
from tests.support.redis_tests import ROOT, RedisTestCase

JUMP_HASH_REFERENCE = [
    (0, 1, 0), (0, 2, 0), (0, 10, 0), (0, 65536, 0),
    (1, 2, 0), (1, 3, 0), (1, 10, 6), (1, 1000, 549), (1, 65536, 21134),
    (2, 10, 6), (2, 1000, 338), (2, 65536, 3927),
    (3, 3, 2), (3, 10, 8), (3, 1000, 961), (3, 65536, 59579),
    (2**64 - 1, 1, 0), (2**64 - 1, 2, 1), (2**64 - 1, 3, 2), (2**64 - 1, 10, 9),
    (2**64 - 1, 1000, 313), (2**64 - 1, 65536, 18311),
    (123456789, 10, 7), (123456789, 1000, 294), (123456789, 65536, 42483),
    (0xDEADBEEFCAFEBABE, 3, 1), (0xDEADBEEFCAFEBABE, 10, 4),
    (0xDEADBEEFCAFEBABE, 1000, 144), (0xDEADBEEFCAFEBABE, 65536, 61115),
    (2**63, 3, 1), (2**63, 10, 5), (2**63, 1000, 453), (2**63, 65536, 53854),
]
# (name, BLAKE2b with an 8-byte digest, shard_for with 2, 3, 5 and 10 shards)
NAME_REFERENCE = [
    ("room", "672114820ccdceac", [1, 2, 2, 2]),
    ("!chat", "01cf7b273d12dc96", [0, 0, 0, 0]),
    ("!fixed.0", "aa68db58b2b3a449", [0, 0, 0, 0]),
    ("group-1", "5a50a558f3a841dd", [0, 0, 4, 4]),
    ("http.request", "d7fa68b3b06d7f2a", [1, 1, 1, 6]),
]


class PlacementTests(SimpleTestCase):
    def test_jump_hash_matches_the_reference(self):
        # (key, buckets, bucket) from Lamping & Veach's JumpConsistentHash
        # (Figure 1 of the paper), transcribed to C, compiled with gcc and
        # run on these keys: not from this module.
        for key, buckets, bucket in JUMP_HASH_REFERENCE:
            with self.subTest(key=key, buckets=buckets):
                self.assertEqual(jump_hash(key, buckets), bucket)
        self.assertTrue(all(0 <= jump_hash(name_hash(str(n)), 7) < 7 for n in range(1000)))

    def test_name_hash_and_shard_for_known_names(self):
        # name_hash from coreutils (printf %s NAME | b2sum -l 64), the
        # shards from the C program above given that hash.
        for name, digest, shards in NAME_REFERENCE:
            with self.subTest(name=name):
                self.assertEqual(name_hash(name), int(digest, 16))
                self.assertEqual([shard_for(name, n) for n in (2, 3, 5, 10)], shards)

    def test_the_worked_example_of_the_docs(self):
        with open(os.path.join(ROOT, "docs", "scaling.rst")) as doc:
            text = " ".join(doc.read().split())
        example = re.search(
            r"the group ``(\S+)`` with three shards: BLAKE2b of ``\S+`` with an 8-byte "
            r"digest is ``([0-9a-f]{16})``, the integer (\d+), and "
            r"``JumpConsistentHash\((\d+), 3\)`` is (\d)", text)
        self.assertIsNotNone(example)
        group, digest, key, same_key, shard = example.groups()
        self.assertEqual(name_hash(group), int(digest, 16))
        self.assertEqual((int(key), int(same_key)), (name_hash(group), name_hash(group)))
        self.assertEqual(Placement(3).group_shard(group), int(shard))

    def test_adding_a_shard_moves_about_one_in_n(self):
        names = [f"!chat.{n}" for n in range(20000)]
        for shards in (1, 2, 3, 5, 9):
            with self.subTest(shards=shards):
                before = [shard_for(name, shards) for name in names]
                after = [shard_for(name, shards + 1) for name in names]
                moved = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
                # Only to the new shard, and about 1/(N+1) of them.
                self.assertTrue(all(a == shards for _, a in moved))
                self.assertAlmostEqual(len(moved) / len(names), 1 / (shards + 1), delta=0.02)

    def test_spread_evenly(self):
        counts = [0] * 4
        for n in range(20000):
            counts[shard_for(f"group-{n}", 4)] += 1
        self.assertTrue(all(4500 < count < 5500 for count in counts), counts)

    def test_rules(self):
        placement = Placement(5)
        first, second = new_name("!websocket.send"), new_name("!websocket.send")
        # Rule 1: a process's response channels share an inbox.
        self.assertEqual(placement.home(first), placement.home(second))
        self.assertEqual(placement.home(first)[1], process_wildcard("!websocket.send"))
        self.assertEqual(placement.home(process_wildcard("!websocket.send")),
                         placement.home(first))
        # Rule 2: other response channels and generated names, by their name.
        self.assertEqual(placement.home("!chat"), (shard_for("!chat", 5), None))
        body = new_name("http.request.body")
        self.assertEqual(placement.home(body), (shard_for(body, 5), None))
        self.assertEqual(placement.group_shard("room"), shard_for("room", 5))
        # Rule 3: normal channels have no home.
        self.assertIsNone(placement.home("http.request"))


PLACEMENT_CHILD = """
import json, sys
import django
from django.conf import settings
settings.configure()
django.setup()
from channels.backends import create_backend
config, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
backend = create_backend("default", config)
placement = {name: backend.placement.home(name) for name in names["channels"]}
placement.update({"group:" + g: backend.placement.group_shard(g) for g in names["groups"]})
for name in names["channels"]:
    backend.send(name, {"from": "child", "to": name})
for group in names["groups"]:
    backend.group_add(group, names["channels"][0])
print(json.dumps(placement))
"""


class PlacementAgreementTests(RedisTestCase):
    def test_two_processes_agree(self):
        """Another process, given the same HOSTS, puts response channels and
        groups where this one looks for them."""
        config = backend_config(self.servers, capacity=1000)
        backend = create_backend("default", config)
        self.addCleanup(backend.close)
        self.addCleanup(backend.flush)
        channels = [new_name("!http.response") for _ in range(20)]
        channels += [f"!fixed.{n}" for n in range(20)]
        groups = [f"room-{n}" for n in range(20)]
        child = subprocess.run(
            [sys.executable, "-c", PLACEMENT_CHILD, json.dumps(config),
             json.dumps({"channels": channels, "groups": groups})],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
            env={**os.environ, "PYTHONPATH": ROOT},
        )
        self.assertEqual(child.returncode, 0, child.stderr)
        theirs = json.loads(child.stdout)
        for name in channels:
            self.assertEqual(tuple(theirs[name]), backend.placement.home(name))
        for group in groups:
            self.assertEqual(theirs["group:" + group], backend.placement.group_shard(group))
        # What the child sent is where this process reads it.
        got = {c for c, _ in backend.receive_batch([process_wildcard("!http.response")],
                                                   limit=100, timeout=1)}
        self.assertEqual(got, set(channels[:20]))
        for name in channels[20:]:
            self.assertEqual(backend.receive_many([name])[1], {"from": "child", "to": name})
        for group in groups:
            self.assertEqual(backend.group_channels(group), [channels[0]])

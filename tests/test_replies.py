"""The reply demultiplexer (channels/replies.py) on its own: who waits for a
reply gets it, nobody else does, and one failing listener costs only its
own reply. The bridge (test_layer_bridge.py), the WSGI adapter
(test_wsgi.py) and Channel.as_view (test_views.py) run through it."""

from django.test import SimpleTestCase

from channels.replies import ReplyDemultiplexer


class ReplyDemultiplexerTests(SimpleTestCase):
    def test_each_reply_goes_to_its_channel_s_listener_in_order(self):
        replies = ReplyDemultiplexer()
        heard = {"a": [], "b": []}
        replies.add("!a", heard["a"].append)
        replies.add("!b", heard["b"].append)
        replies.deliver([("!a", {"n": 1}), ("!b", {"n": 2}), ("!a", {"n": 3})])
        self.assertEqual(heard, {"a": [{"n": 1}, {"n": 3}], "b": [{"n": 2}]})
        self.assertEqual(len(replies), 2)

    def test_a_reply_nobody_waits_for_is_dropped(self):
        replies = ReplyDemultiplexer()
        heard = []
        replies.add("!gone", heard.append)
        replies.discard("!gone")
        replies.discard("!never")
        replies.deliver([("!gone", {"n": 1}), ("!never", {"n": 2})])
        self.assertEqual((heard, len(replies)), ([], 0))

    def test_a_failing_listener_costs_only_its_reply(self):
        replies = ReplyDemultiplexer()
        heard = []

        def broken(content):
            raise RuntimeError("listener broke")

        replies.add("!broken", broken)
        replies.add("!fine", heard.append)
        with self.assertLogs("channels.replies", "ERROR") as logs:
            replies.deliver([("!broken", {"n": 1}), ("!fine", {"n": 2})])
        self.assertEqual(heard, [{"n": 2}])
        self.assertIn("Could not handle a message on '!broken'", logs.output[0])

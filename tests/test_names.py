"""Channel naming rules and generated names."""

import os
import secrets
import subprocess
import sys
import threading
import time
from unittest import mock

from django.test import SimpleTestCase

from channels import Channel, names
from channels.exceptions import InvalidChannelName
from channels.names import (
    is_response_channel,
    new_name,
    owner_process,
    process_token,
    process_wildcard,
    validate_name,
)


class ValidateNameTests(SimpleTestCase):
    def test_valid_names(self):
        for name in ("http.request", "!http.response.abc", "a", "A-Z_0-9.x",
                     "x" * 199, "!" + "x" * 198):
            with self.subTest(name=name):
                self.assertEqual(validate_name(name), name)

    def test_invalid_names(self):
        for name in ("", "!", "has space", "é", "slash/no", "star*", "!!double",
                     "mid!bang", "x" * 200, "!" + "x" * 199, "tab\t", "new\nline"):
            with self.subTest(name=name), self.assertRaises(InvalidChannelName) as cm:
                validate_name(name)
            self.assertIn("Invalid channel name", str(cm.exception))

    def test_non_str_names(self):
        for name in (None, 1, b"bytes", ["list"]):
            with self.subTest(name=name), \
                    self.assertRaisesMessage(InvalidChannelName, "channel name must be a str"):
                validate_name(name)

    def test_kind_is_named_and_long_names_are_cut_in_the_error(self):
        with self.assertRaises(InvalidChannelName) as cm:
            validate_name("bad name" * 100, "group")
        self.assertIn("Invalid group name", str(cm.exception))
        self.assertLess(len(str(cm.exception)), 500)

    def test_invalid_name_is_also_a_value_error(self):
        self.assertTrue(issubclass(InvalidChannelName, ValueError))


class GeneratedNameTests(SimpleTestCase):
    def test_new_names_are_unique_and_carry_the_process_token(self):
        names = {Channel.new_name("!websocket.send") for _ in range(1000)}
        self.assertEqual(len(names), 1000)
        for name in list(names)[:5]:
            self.assertRegex(name, r"\A!websocket\.send\.[0-9a-f]{16}-[0-9a-f]{32}\Z")
            self.assertEqual(owner_process(name), process_token())
            self.assertTrue(name.startswith(process_wildcard("!websocket.send")))

    def test_owner_process_of_other_names(self):
        self.assertIsNone(owner_process("http.request"))
        self.assertEqual(owner_process(process_wildcard("x")), process_token())

    def test_invalid_prefix(self):
        with self.assertRaises(InvalidChannelName):
            new_name("bad prefix")

    def test_response_channels(self):
        self.assertTrue(is_response_channel(new_name("!http.response")))
        self.assertFalse(is_response_channel("http.request"))

    def test_threads_agree_on_a_new_token(self):
        # As after a fork: the token is stale and many threads ask at once.
        # Making a token is slowed down so that the threads surely overlap.
        self.addCleanup(setattr, names, "_process", names._process)
        token_hex = secrets.token_hex

        def slow_token_hex(size):
            time.sleep(0.001)
            return token_hex(size)

        for _ in range(3):
            names._process = (0, "")
            barrier = threading.Barrier(16)
            tokens = set()

            def ask(barrier=barrier, tokens=tokens):
                barrier.wait()
                tokens.add(owner_process(new_name("!http.response")))

            threads = [threading.Thread(target=ask) for _ in range(16)]
            with mock.patch("channels.names.secrets.token_hex", slow_token_hex):
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            self.assertEqual(tokens, {process_token()})

    def test_token_differs_in_another_process(self):
        code = "from channels.names import process_token; print(process_token())"
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        other = subprocess.run([sys.executable, "-c", code], capture_output=True,
                               text=True, check=True, env=env).stdout.strip()
        self.assertRegex(other, r"\A[0-9a-f]{16}\Z")
        self.assertNotEqual(other, process_token())

"""Static files answered by the interface server itself
(channels.interfaces.static_files), over real sockets: from STATIC_ROOT as
in production, from the staticfiles finders as in development, and what it
must never do (serve outside STATIC_URL or outside the files it knows)."""

import io
import os
import shutil
import socket
import tempfile

import requests
from django.test import SimpleTestCase, override_settings

from channels.interfaces.static_files import PIECE_SIZE, StaticFiles
from tests.support.interface_server import download_slowly, raw_request, serving, status_of

SCRIPT = b"// 300 KB of script\n" + b"var x = 1;\n" * 27_000
SECRET = b"SECRET_KEY = 'outside STATIC_ROOT'\n"


class StaticRootTests(SimpleTestCase):
    """Production: the files collectstatic put in STATIC_ROOT."""

    def setUp(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        self.root = os.path.join(tmp, "static")
        os.makedirs(os.path.join(self.root, "app", "sub"))
        with open(os.path.join(self.root, "app", "chat.js"), "wb") as f:
            f.write(SCRIPT)
        with open(os.path.join(self.root, "app", "style.css"), "w") as f:
            f.write("body { color: black; }\n")
        with open(os.path.join(tmp, "settings.py"), "wb") as f:
            f.write(SECRET)
        settings = override_settings(STATIC_ROOT=self.root, STATIC_URL="/static/", DEBUG=False)
        settings.enable()
        self.addCleanup(settings.disable)

    def serve(self, **options):
        static_files, status = StaticFiles.from_settings()
        self.assertIn(f"from STATIC_ROOT ({self.root}, ", status)
        return serving(static_files=static_files, **options)

    def test_file_with_type_length_and_cache_headers(self):
        self.assertIn("2 files", StaticFiles.from_settings()[1])
        with self.serve() as (handle, _):
            response = requests.get(f"http://127.0.0.1:{handle.port}/static/app/chat.js",
                                    timeout=5)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, SCRIPT)
        headers = response.headers
        self.assertEqual(headers["Content-Type"], "text/javascript; charset=\"utf-8\"")
        self.assertEqual(headers["Content-Length"], str(len(SCRIPT)))
        self.assertEqual(headers["Cache-Control"], "max-age=60, public")
        self.assertIn("Last-Modified", headers)
        self.assertTrue(headers["ETag"].startswith('"'))

    def test_matching_etag_gets_304_without_body(self):
        url = "/static/app/style.css"
        with self.serve() as (handle, _), requests.Session() as browser:
            first = browser.get(f"http://127.0.0.1:{handle.port}{url}", timeout=5)
            again = browser.get(f"http://127.0.0.1:{handle.port}{url}", timeout=5,
                                headers={"If-None-Match": first.headers["ETag"]})
            changed = browser.get(f"http://127.0.0.1:{handle.port}{url}", timeout=5,
                                  headers={"If-None-Match": '"other"'})
        self.assertEqual((again.status_code, again.content), (304, b""))
        self.assertEqual(again.headers["ETag"], first.headers["ETag"])
        self.assertEqual((changed.status_code, changed.content),
                         (200, b"body { color: black; }\n"))

    def test_head_has_the_headers_of_get_and_the_connection_stays_open(self):
        with self.serve() as (handle, _), socket.create_connection(
                ("127.0.0.1", handle.port), timeout=5) as sock:
            sock.sendall(b"HEAD /static/app/chat.js HTTP/1.1\r\nHost: localhost\r\n\r\n"
                         b"GET /static/app/style.css HTTP/1.1\r\nHost: localhost\r\n"
                         b"Connection: close\r\n\r\n")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        head, get = received.split(b"HTTP/1.1 ")[1:]
        self.assertTrue(head.startswith(b"200 OK\r\n"), head)
        self.assertIn(f"Content-Length: {len(SCRIPT)}\r\n".encode(), head)
        self.assertTrue(head.endswith(b"\r\n\r\n"), "HEAD answered with a body")
        self.assertTrue(get.endswith(b"\r\n\r\nbody { color: black; }\n"), get)

    def test_range(self):
        with self.serve() as (handle, _):
            response = requests.get(f"http://127.0.0.1:{handle.port}/static/app/chat.js",
                                    headers={"Range": "bytes=3-9"}, timeout=5)
        self.assertEqual((response.status_code, response.content), (206, SCRIPT[3:10]))

    def test_what_it_does_not_serve_goes_to_the_consumer(self):
        """A path outside STATIC_URL, one that is not canonical (``..``,
        escaped or not), a directory, a missing file, another method, or a
        request with a body: the project's http.request consumer answers
        (here with the method and path it got), and no file leaks."""
        requests_sent = [
            b"GET /app/chat.js HTTP/1.1",
            b"GET /static/../settings.py HTTP/1.1",
            b"GET /static/%2e%2e/settings.py HTTP/1.1",
            b"GET /static/app/../../settings.py HTTP/1.1",
            b"GET /static/app//chat.js HTTP/1.1",
            b"GET /static/app\\chat.js HTTP/1.1",
            b"GET /static/app/sub HTTP/1.1",
            b"GET /static/app/sub/ HTTP/1.1",
            b"GET /static/app/missing.js HTTP/1.1",
            b"GET /static/app/chat.js%00.txt HTTP/1.1",
            b"DELETE /static/app/chat.js HTTP/1.1",
        ]
        with self.serve() as (handle, _):
            for line in requests_sent:
                with self.subTest(line):
                    answer = raw_request(handle.port, line + b"\r\nHost: localhost\r\n"
                                         b"Connection: close\r\n\r\n")
                    method, path = line.split()[:2]
                    self.assertEqual(status_of(answer), 200)
                    self.assertIn(b"\r\n\r\n" + method + b" /", answer)
                    self.assertNotIn(b"SECRET_KEY", answer)
                    self.assertNotIn(b"var x", answer)
            with_body = raw_request(handle.port, b"GET /static/app/chat.js HTTP/1.1\r\n"
                                    b"Host: localhost\r\nContent-Length: 2\r\n"
                                    b"Connection: close\r\n\r\nhi")
            self.assertIn(b"\r\n\r\nGET /static/app/chat.js", with_body)

    def test_a_file_deleted_after_startup_goes_to_the_consumer(self):
        with self.serve() as (handle, _):
            os.remove(os.path.join(self.root, "app", "style.css"))
            response = requests.get(f"http://127.0.0.1:{handle.port}/static/app/style.css",
                                    timeout=5)
            again = requests.get(f"http://127.0.0.1:{handle.port}/static/app/chat.js",
                                 timeout=5)
        self.assertEqual(response.text, "GET /static/app/style.css {} {}")
        self.assertEqual(again.content, SCRIPT)

    def test_a_slow_reader_costs_one_piece_of_memory(self):
        with open(os.path.join(self.root, "app", "big.bin"), "wb") as f:
            f.write(os.urandom(6 * 1024 * 1024))
        with self.serve() as (handle, _):
            response, most_held = download_slowly(handle, "/static/app/big.bin", pace=0.002)
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "))
        self.assertEqual(len(response.split(b"\r\n\r\n", 1)[1]), 6 * 1024 * 1024)
        self.assertLessEqual(most_held, PIECE_SIZE)

    def test_access_log_line(self):
        log = io.StringIO()
        with self.serve(access_log=log) as (handle, _):
            requests.get(f"http://127.0.0.1:{handle.port}/static/app/style.css", timeout=5)
        self.assertIn('"GET /static/app/style.css HTTP/1.1" 200 23\n', log.getvalue())

    def test_not_served_without_collectstatic(self):
        with override_settings(STATIC_ROOT=os.path.join(self.root, "nothing")):
            static_files, status = StaticFiles.from_settings()
        self.assertIsNone(static_files)
        self.assertIn("is not a directory: run manage.py collectstatic", status)
        with override_settings(STATIC_ROOT=None):
            self.assertEqual(StaticFiles.from_settings(),
                             (None, "Static files: none served (DEBUG is off and STATIC_ROOT "
                                    "is not set)."))


@override_settings(INSTALLED_APPS=["django.contrib.staticfiles", "channels", "tests.testapp"],
                   STATIC_URL="/static/", STATIC_ROOT=None, DEBUG=True)
class FindersTests(SimpleTestCase):
    """Development: the files the staticfiles finders find, as runserver
    serves them, looked up at each request."""

    def setUp(self):
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory)
        settings = override_settings(STATICFILES_DIRS=[self.directory])
        settings.enable()
        self.addCleanup(settings.disable)

    def test_a_file_added_while_serving_is_found(self):
        static_files, status = StaticFiles.from_settings()
        self.assertEqual(status, "Static files at /static/ from the staticfiles finders.")
        with serving(static_files=static_files) as (handle, _):
            url = f"http://127.0.0.1:{handle.port}/static/new.txt"
            self.assertEqual(requests.get(url, timeout=5).text, "GET /static/new.txt {} {}")
            with open(os.path.join(self.directory, "new.txt"), "w") as f:
                f.write("fresh\n")
            response = requests.get(url, timeout=5)
            outside = raw_request(handle.port, b"GET /static/../../etc/passwd HTTP/1.1\r\n"
                                  b"Host: localhost\r\nConnection: close\r\n\r\n")
        self.assertEqual((response.status_code, response.text), (200, "fresh\n"))
        self.assertEqual(response.headers["Content-Type"], 'text/plain; charset="utf-8"')
        self.assertIn(b"\r\n\r\nGET /", outside)

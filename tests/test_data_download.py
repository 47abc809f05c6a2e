"""Checksummed downloads against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from lineup.data.download import download, file_digest
from lineup.errors import DataError

PAYLOAD = bytes(range(256)) * 64
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``/good/f`` (the payload), ``/bad/f`` (other bytes), ``/short/f`` (half the bytes promised)."""

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        if self.path == "/good/f":
            self._send(PAYLOAD, len(PAYLOAD))
        elif self.path == "/bad/f":
            self._send(PAYLOAD[::-1], len(PAYLOAD))
        elif self.path == "/short/f":
            self._send(PAYLOAD[: len(PAYLOAD) // 2], len(PAYLOAD))
        else:
            self.send_error(404)

    def _send(self, body: bytes, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Base URL of a local server, e.g. ``http://127.0.0.1:PORT``."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/f"


def test_file_digest(tmp_path) -> None:
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    # The RFC 1321 and FIPS 180-2 test vectors for "abc".
    assert file_digest(path, "md5") == "900150983cd24fb0d6963f7d28e17f72"
    assert file_digest(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    "checksum", [{"md5": MD5}, {"sha256": SHA256}, {"md5": MD5, "sha256": SHA256.upper()}]
)
def test_download_verifies_and_places_the_file(server: str, tmp_path, checksum: dict[str, str]) -> None:
    dest = tmp_path / "new" / "dir" / "f"
    assert download([f"{server}/good/f"], dest, **checksum) == dest
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["f"]  # no temporary file left over


@pytest.mark.parametrize("first", ["missing/f", "bad/f", "short/f"], ids=["404", "wrong-bytes", "truncated"])
def test_a_failing_first_mirror_falls_through_to_the_next(server: str, tmp_path, first: str) -> None:
    dest = tmp_path / "f"
    download([f"{server}/{first}", f"{server}/good/f"], dest, md5=MD5)
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_all_mirrors_failing_explains_each_and_leaves_no_file(
    server: str, tmp_path, closed_port_url: str
) -> None:
    dest = tmp_path / "f"
    urls = [
        f"{server}/missing/f",
        f"{server}/bad/f",
        f"{server}/short/f",
        closed_port_url,
        "file:///etc/hostname",
    ]
    with pytest.raises(DataError) as info:
        download(urls, dest, md5=MD5, hint="Or put it in $LINEUP_DATA/example")
    message = str(info.value)
    assert f"{server}/missing/f: HTTP 404" in message
    wrong_md5 = hashlib.md5(PAYLOAD[::-1]).hexdigest()
    assert f"{server}/bad/f: md5 is {wrong_md5}, expected {MD5}" in message
    assert f"{server}/short/f: connection closed after {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes" in message
    assert f"{closed_port_url}: " in message
    assert "file:///etc/hostname: ValueError: not an http(s) URL" in message
    assert f"Expected md5 {MD5}" in message
    assert f"save it as {dest}" in message
    assert message.endswith("Or put it in $LINEUP_DATA/example")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial one


def test_a_failed_download_keeps_the_previous_file(server: str, tmp_path) -> None:
    dest = tmp_path / "f"
    dest.write_bytes(b"previous")
    with pytest.raises(DataError):
        download([f"{server}/bad/f"], dest, md5=MD5)
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_download_without_a_checksum_is_refused(server: str, tmp_path) -> None:
    with pytest.raises(ValueError, match="md5 or sha256"):
        download([f"{server}/good/f"], tmp_path / "f")
    assert list(tmp_path.iterdir()) == []

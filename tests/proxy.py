"""A TCP proxy in front of a real Redis that can hold back a reply (it arrives after the
client's timeout, as from a Redis busy with a slow command or a congested network) or drop it
with the connection (as when a connection breaks after Redis ran the command)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from types import TracebackType


class DelayingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._hold_next = 0.0  # seconds to hold the next reply
        self._drop_next = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.held = 0  # replies held back or dropped so far

    def hold_next_reply(self, seconds: float) -> None:
        """The next reply from Redis reaches its client `seconds` late; later ones on time."""
        with self._lock:
            self._hold_next = seconds

    def drop_next_reply(self) -> None:
        """The next reply from Redis is lost: its client's connection is closed instead."""
        with self._lock:
            self._drop_next = True

    def __enter__(self) -> DelayingProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            self._listener.setblocking(False)
            selector.register(self._listener, selectors.EVENT_READ)
            peers: dict[socket.socket, socket.socket] = {}
            while not self._stop.is_set():
                for key, _ in selector.select(0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        client, _ = self._listener.accept()
                        server = socket.create_connection(("127.0.0.1", self.upstream_port))
                        peers[client], peers[server] = server, client
                        selector.register(client, selectors.EVENT_READ)
                        selector.register(server, selectors.EVENT_READ, data="upstream")
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    peer = peers.get(sock)
                    if key.data == "upstream" and self._dropped():
                        data = b""
                    if not data or peer is None:
                        for end in (sock, peer):
                            if end is not None and end in peers:
                                selector.unregister(end)
                                peers.pop(end)
                                end.close()
                        continue
                    if key.data == "upstream":
                        self._delay()
                    # A client that gave up (it timed out) has closed: its reply goes nowhere.
                    with contextlib.suppress(OSError):
                        peer.sendall(data)
            for sock in peers:
                sock.close()

    def _dropped(self) -> bool:
        with self._lock:
            drop, self._drop_next = self._drop_next, False
        self.held += drop
        return drop

    def _delay(self) -> None:
        with self._lock:
            hold, self._hold_next = self._hold_next, 0.0
        if hold:
            self.held += 1
            time.sleep(hold)

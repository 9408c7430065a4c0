"""A network receipt printer on loopback: it keeps what it is sent and answers the ESC/POS
real-time status queries (DLE EOT 1, online; DLE EOT 4, paper) as the test sets them."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

DLE_EOT = b"\x10\x04"
ONLINE, OFFLINE = 0x12, 0x1A  # bit 3 set: offline
PAPER_OK, PAPER_LOW, PAPER_OUT = 0x12, 0x1E, 0x72


class LoopbackPrinter:
    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.online = True
        self.paper = PAPER_OK
        self.answers = True
        """False: status queries get no answer (a printer that only prints)."""
        self.printed = bytearray()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> LoopbackPrinter:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Closing the listener does not wake a thread blocked in accept() on it (the thread
        # went back to accept once the client hung up): shutting it down does, at once.
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return  # closed
            with connection:
                self._talk(connection)

    def _talk(self, connection: socket.socket) -> None:
        pending = b""
        while True:
            try:
                chunk = connection.recv(4096)
            except OSError:
                return
            if not chunk:
                self.printed.extend(pending)
                return
            pending += chunk
            while (at := pending.find(DLE_EOT)) >= 0 and len(pending) >= at + 3:
                self.printed.extend(pending[:at])
                which, pending = pending[at + 2], pending[at + 3 :]
                if self.answers:
                    reply = (ONLINE if self.online else OFFLINE) if which == 1 else self.paper
                    connection.sendall(bytes([reply]))

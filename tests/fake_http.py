"""What the fake provider servers share: a threaded JSON-over-HTTP server on 127.0.0.1 and a free port.

Each fake (Twilio, Aliyun, Tencent, WeCom) gives :class:`JsonServer` one function that takes the request
(the handler, for its path and headers, and the body) and returns the status and the JSON answer, or
``None`` to drop the connection without an answer (a provider that never replies).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any] | None
Handle = Callable[[BaseHTTPRequestHandler, bytes], Answer]


class JsonServer:
    def __init__(self, handle: Handle, content_type: str = "application/json") -> None:
        def post(handler: BaseHTTPRequestHandler) -> None:
            body = handler.rfile.read(int(handler.headers.get("Content-Length", 0) or 0))
            answer = handle(handler, body)
            if answer is None:
                handler.close_connection = True
                return
            status, payload = answer
            data = json.dumps(payload, ensure_ascii=False).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

"""A small standard-library HTTP server: the static page, the charting library, and the JSON API.

Routes::

    GET  /                    the page (static/index.html; the query string carries the page state)
    GET  /static/<file>       app.js, app.css, plotly.min.js (from the installed ``plotly`` package)
    GET  /api/meta            goals, levers, scenarios (labels in en and zh)
    POST /api/run             {"scenario", "levers", "parameters", "ensemble"} -> goal table, yearly indicators
    POST /api/scenario        the same body -> {"filename", "yaml"}: a self-contained scenario file

Bad input answers HTTP 400 with ``{"error": "<one line>"}``; nothing else ever reaches the client
(an unexpected failure is logged on the server and answered with a one-line 500).
"""

from __future__ import annotations

import json
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError
from .service import Service

MAX_BODY = 1 << 20  # bytes of a request body
DISCARD_MAX = 64 << 20  # a larger body is not even read: the connection is closed
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def plotly_js() -> Path:
    """The plotly.js bundle shipped inside the ``plotly`` Python package (served locally, no CDN)."""
    try:
        import plotly
    except ImportError:
        raise InputError("the interactive page needs the 'app' extra: pip install \".[app]\" (plotly)") from None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise InputError(f"plotly.min.js not found in the installed plotly package ({path.parent})")
    return path


def _reject_constant(name: str) -> Any:
    raise InputError(f"expected finite numbers, got {name}", "request")


class App(ThreadingHTTPServer):
    """The server: one :class:`Service` (the model compiled once) shared by all requests."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: Service, quiet: bool = True) -> None:
        self.service = service
        self.quiet = quiet
        self.files: dict[str, tuple[bytes, str]] = {}
        for name, ctype in STATIC.items():
            self.files[name] = ((resources.files(__package__) / "static" / name).read_bytes(), ctype)
        self.files["plotly.min.js"] = (plotly_js().read_bytes(), "text/javascript; charset=utf-8")
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: App
    server_version = "sdsim"
    protocol_version = "HTTP/1.1"

    # ------------------------------------------------------------------------------ helpers

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", {"Cache-Control": "no-store"})

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": " ".join(str(message).split())})  # one line, always

    def _host_ok(self) -> bool:
        """On a loopback address, only loopback Host headers (a web page elsewhere cannot rebind DNS to us)."""
        bound = str(self.server.server_address[0])
        if bound not in LOOPBACK:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
        return name in LOOPBACK

    # ------------------------------------------------------------------------------- routes

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "unexpected Host header")
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            body, ctype = self.server.files["index.html"]
            if getattr(self.server.service, "lang", "en") == "zh":  # the page's initial language (app.js follows ?lang)
                body = body.replace(b'<html lang="en">', b'<html lang="zh-CN">', 1)
            return self._send(HTTPStatus.OK, body, ctype, {"Cache-Control": "no-store"})
        if path.startswith("/static/") and path[len("/static/"):] in self.server.files:
            body, ctype = self.server.files[path[len("/static/"):]]
            return self._send(HTTPStatus.OK, body, ctype, {"Cache-Control": "max-age=3600"})
        if path == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        if path == "/api/meta":
            return self._guarded(lambda: self.server.service.meta())
        return self._error(HTTPStatus.NOT_FOUND, f"not found: {path}")

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "unexpected Host header")
        path = urlsplit(self.path).path
        routes = {"/api/run": self.server.service.run, "/api/scenario": self._scenario_file}
        if path not in routes:
            self._drain()
            return self._error(HTTPStatus.NOT_FOUND, f"not found: {path}")
        try:
            body = self._body()
        except InputError as exc:
            self.close_connection = True
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        return self._guarded(lambda: routes[path](body))

    def _scenario_file(self, body: Any) -> dict[str, str]:
        name, text = self.server.service.scenario_yaml(body)
        return {"filename": name, "yaml": text}

    def _drain(self) -> None:
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        if 0 < n <= MAX_BODY:
            self.rfile.read(n)
        elif n:
            self.close_connection = True

    def _body(self) -> Any:
        """The request body as JSON (at most MAX_BODY bytes, finite numbers only)."""
        text = self.headers.get("Content-Length")
        if text is None or not text.strip().isdigit():
            raise InputError("a request body with a Content-Length is required", "request")
        n = int(text)
        if n > MAX_BODY:
            if n <= DISCARD_MAX:  # read it away, so that the client sees the answer rather than a reset connection
                left = n
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    left -= len(chunk)
            raise InputError(f"the request body is {n:,} bytes; at most {MAX_BODY:,} are accepted", "request")
        raw = self.rfile.read(n)
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise InputError("the request body is not UTF-8 text", "request") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"the request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                             "request") from None
        except RecursionError:
            raise InputError("the request body is nested too deeply", "request") from None

    def _guarded(self, fn: Any) -> None:
        try:
            data = fn()
        except InputError as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except RecursionError:
            return self._error(HTTPStatus.BAD_REQUEST, "request: the request is nested too deeply")
        except Exception as exc:  # a bug, not bad input: log it here, one line to the client
            traceback.print_exc(file=sys.stderr)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error ({type(exc).__name__}); "
                               "see the server's log")
        return self._json(HTTPStatus.OK, data)

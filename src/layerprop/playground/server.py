"""The playground's web server: Starlette under uvicorn, one websocket per page.

Security model (see ``docs/playground.md``):

- binds 127.0.0.1 by default; any other host prints a warning;
- the ``Host`` header must name this machine by a loopback name (or the host given to
  :func:`serve`), which defeats DNS rebinding;
- the websocket refuses an ``Origin`` other than the page's own (cross-site websocket
  hijacking); every state-changing action goes through the websocket;
- static files come from the package's ``static/`` folder only; anything else is a 404;
- uploads are capped, read by ``layerprop.data`` (no pickle), and model files by ``lp.load``;
- a bad message, bad data or absurd settings give an error message; the server keeps running.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import webbrowser
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .session import MAX_MODEL_BYTES, Session, answer
from .session import json_default as _json_default

STATIC = Path(__file__).resolve().parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_MESSAGE_BYTES = (MAX_MODEL_BYTES * 4) // 3 + 4096  # a base64 model file plus its JSON envelope
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                 ".ico": "image/x-icon", ".json": "application/json"}
log = logging.getLogger("layerprop.playground")


def _hostname(netloc: str) -> tuple:
    """(host, port) of a Host header or an origin's netloc ('[::1]:8765' -> ('::1', '8765'))."""
    parts = urlsplit("//" + netloc)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port


def _security_headers(host_header: str) -> dict:
    ws = f"ws://{host_header}" if host_header else ""
    return {
        "Content-Security-Policy": (f"default-src 'self'; script-src 'self'; style-src 'self'; "
                                    f"img-src 'self' data: blob:; connect-src 'self' {ws}; "
                                    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


def create_app(allowed_hosts=LOOPBACK) -> Starlette:
    """The Starlette app: ``/`` (the page), ``/static/...`` (package files only), ``/ws`` (the session)."""
    allowed = {h.lower().strip("[]") for h in allowed_hosts}

    def host_ok(headers) -> bool:
        host, _ = _hostname(headers.get("host", ""))
        return host in allowed

    def guard(request):
        if not host_ok(request.headers):
            return PlainTextResponse("unknown Host header", status_code=400)
        return None

    async def index(request):
        bad = guard(request)
        if bad is not None:
            return bad
        return FileResponse(STATIC / "index.html", headers=_security_headers(request.headers.get("host", "")),
                            media_type=CONTENT_TYPES[".html"])

    async def static(request):
        bad = guard(request)
        if bad is not None:
            return bad
        rel = request.path_params["path"]
        try:
            path = (STATIC / rel).resolve()
        except (OSError, ValueError):
            return PlainTextResponse("not found", status_code=404)
        if not path.is_relative_to(STATIC) or not path.is_file() or path.suffix not in CONTENT_TYPES:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path, media_type=CONTENT_TYPES[path.suffix],
                            headers=_security_headers(request.headers.get("host", "")))

    async def favicon(request):
        return Response(status_code=204)

    async def ws_endpoint(websocket: WebSocket):
        origin = websocket.headers.get("origin")
        host_header = websocket.headers.get("host", "")
        if not host_ok(websocket.headers) or (origin is not None and not _same_origin(origin, host_header)):
            # refuse before accepting: a page on another origin cannot drive the session
            log.warning("refused a websocket from origin %r (host %r)", origin, host_header)
            await websocket.close(code=1008)
            return
        await websocket.accept()
        session = Session()
        try:
            while True:
                text = await websocket.receive_text()
                for reply in await run_in_threadpool(_answer, session, text):
                    await websocket.send_text(json.dumps(reply, allow_nan=False, default=_json_default))
        except WebSocketDisconnect:
            pass
        finally:
            session.close()

    routes = [Route("/", index), Route("/favicon.ico", favicon), Route("/static/{path:path}", static),
              WebSocketRoute("/ws", ws_endpoint)]
    return Starlette(routes=routes)


def _same_origin(origin: str, host_header: str) -> bool:
    """The page's own origin: http://<the Host header>, same host name and port."""
    parts = urlsplit(origin)
    if parts.scheme != "http":
        return False
    return _hostname(parts.netloc) == _hostname(host_header)


def _answer(session: Session, text: str) -> list:
    """The replies to one websocket message; every failure becomes an error message for the page."""
    if len(text) > MAX_MESSAGE_BYTES:
        return [{"type": "error", "message": "message too large"}]
    try:
        msg = json.loads(text)
    except ValueError:
        return [{"type": "error", "message": "a message must be JSON"}]
    return answer(session, msg)


def serve(host="127.0.0.1", port=8765, open_browser=True):
    """Run the playground at http://host:port/ until interrupted (Ctrl+C).

    Parameters
    ----------
    host : str
        The address to bind. Anything but a loopback address exposes the playground to the
        network (it has no login): a warning is printed.
    port : int
    open_browser : bool
        Open the user's web browser at the page once the server is up.
    """
    import uvicorn

    if host not in LOOPBACK:
        print(f"Warning: serving on {host}, not 127.0.0.1: anyone who can reach this address and port "
              "can use the playground (it has no login). Use --host 127.0.0.1 unless you mean it.",
              file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}/"
    hosts = (*LOOPBACK, host)
    config = uvicorn.Config(create_app(hosts), host=host, port=port, log_level="warning",
                            ws_max_size=MAX_MESSAGE_BYTES, ws="websockets")
    server = uvicorn.Server(config)
    print(f"layerprop playground at {url} (Ctrl+C to stop)", file=sys.stderr)
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    server.run()

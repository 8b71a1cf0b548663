"""The studio's HTTP server: a Starlette app over one :class:`~midi_ddsp.studio.session.Session`.

See :mod:`midi_ddsp.studio` for the endpoints. Requests that change the session must carry the header
``X-Studio: 1`` and, if they carry an ``Origin``, come from the page's own origin: another web site open in
the same browser can then neither change the performance nor read it (no CORS headers are ever sent). The
``Host`` header must name the address the server listens on (no DNS rebinding).
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from midi_ddsp.errors import MidiDDSPError

from .edits import StudioError
from .renderer import spectrogram
from .session import MAX_UPLOAD_BYTES, Session

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 8 << 20  # a whole performance as JSON (MAX_NOTES notes fit comfortably)
ASSET_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _error(e: Exception) -> JSONResponse:
    status = e.status if isinstance(e, StudioError) else 400
    return JSONResponse({"error": str(e)}, status_code=status)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise StudioError(f"body larger than {limit >> 20} MiB", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise StudioError(f"body larger than {limit >> 20} MiB", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StudioError("body is not UTF-8 text", 400) from None


def create_app(session: Session, allowed_hosts: tuple[str, ...] = LOOPBACK) -> Starlette:
    """The ASGI app serving ``session`` (the page under ``/``, the API under ``/api``).

    ``allowed_hosts``: host names accepted in the ``Host`` header (the listening address and loopback names).
    """

    def guard(fn, mutating: bool):
        async def endpoint(request: Request):
            host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
            if host and host not in allowed_hosts and "*" not in allowed_hosts:
                return JSONResponse({"error": f"unexpected Host {host!r}"}, status_code=403)
            if mutating:
                if request.headers.get("x-studio") != "1":
                    return JSONResponse({"error": "missing header X-Studio: 1"}, status_code=403)
                origin = request.headers.get("origin")
                if origin and urlsplit(origin).netloc != request.headers.get("host"):
                    return JSONResponse({"error": f"cross-origin request from {origin} refused"}, status_code=403)
            try:
                return await fn(request)
            except MidiDDSPError as e:  # StudioError and every user-facing error: one line, 4xx
                return _error(e)
        return endpoint

    async def index(request):
        return FileResponse(STATIC / "index.html", media_type=ASSET_TYPES[".html"],
                            headers={"Cache-Control": "no-cache"})

    async def asset(request):
        name = request.path_params["name"]
        path = STATIC / name
        if "/" in name or "\\" in name or name.startswith(".") or path.suffix not in ASSET_TYPES \
                or not path.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path, media_type=ASSET_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})

    async def get_state(request):
        return JSONResponse(await run_in_threadpool(session.state))

    async def get_performance(request):
        text = await run_in_threadpool(session.performance_json)
        return Response(text, media_type="application/json")

    async def put_performance(request):
        body = _text(await _body(request, MAX_BODY_BYTES))
        return JSONResponse(await run_in_threadpool(session.put, body))

    async def retake(request):
        body = _text(await _body(request, MAX_BODY_BYTES))
        return JSONResponse(await run_in_threadpool(session.retake, body))

    async def undo(request):
        return JSONResponse(await run_in_threadpool(session.undo))

    async def redo(request):
        return JSONResponse(await run_in_threadpool(session.redo))

    async def open_file(request):
        data = await _body(request, MAX_UPLOAD_BYTES)
        name = request.query_params.get("name", "upload")
        return JSONResponse(await run_in_threadpool(session.open_bytes, name, data))

    def _download(data, media, ext):
        stem = Path(session.source_name or "performance").stem or "performance"
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)[:80]
        return Response(data, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{safe}{ext}"',
                                 "Cache-Control": "no-store"})

    async def audio_wav(request):
        data = await run_in_threadpool(session.wav)
        if request.query_params.get("download"):
            return _download(data, "audio/wav", ".wav")
        return Response(data, media_type="audio/wav", headers={"Cache-Control": "no-store"})

    async def export(request):
        kind = request.path_params["kind"]
        if kind == "json":
            return _download(await run_in_threadpool(session.performance_json), "application/json", ".json")
        if kind == "csv":
            return _download(await run_in_threadpool(session.performance_csv), "text/csv", ".csv")
        if kind == "mid":
            return _download(await run_in_threadpool(session.midi_bytes), "audio/midi", ".mid")
        return JSONResponse({"error": f"unknown export {kind!r} (json, csv, mid; audio: /api/audio.wav)"},
                            status_code=404)

    async def curves(request):
        return JSONResponse(await run_in_threadpool(session.curves))

    async def get_spectrogram(request):
        q = request.query_params
        try:
            t0, t1 = float(q.get("t0", 0)), float(q.get("t1", session.render.duration_s))
            width, height = int(q.get("width", 800)), int(q.get("height", 128))
        except ValueError:
            raise StudioError("t0, t1 (seconds), width and height (pixels) must be numbers") from None
        if not (0 <= t0 < t1 and 8 <= width <= 4096 and 8 <= height <= 512 and np.isfinite(t1)):
            raise StudioError("need 0 <= t0 < t1, width 8..4096 and height 8..512")

        def compute():
            with session.lock:
                mix, sr, version = session.render.mix, session.render.sample_rate, session.render.version
                return spectrogram(mix, sr, t0, t1, width, height), version

        img, version = await run_in_threadpool(compute)
        return Response(img.tobytes(), media_type="application/octet-stream",
                        headers={"X-Width": str(width), "X-Height": str(height), "X-Audio-Version": str(version),
                                 "Cache-Control": "no-store"})

    async def favicon(request):
        return Response(status_code=204)

    routes = [
        Route("/", guard(index, False)),
        Route("/favicon.ico", favicon),
        Route("/static/{name}", guard(asset, False)),
        Route("/api/state", guard(get_state, False)),
        Route("/api/performance", guard(get_performance, False), methods=["GET"]),
        Route("/api/performance", guard(put_performance, True), methods=["PUT"]),
        Route("/api/retake", guard(retake, True), methods=["POST"]),
        Route("/api/undo", guard(undo, True), methods=["POST"]),
        Route("/api/redo", guard(redo, True), methods=["POST"]),
        Route("/api/open", guard(open_file, True), methods=["POST"]),
        Route("/api/audio.wav", guard(audio_wav, False)),
        Route("/api/export/{kind}", guard(export, False)),
        Route("/api/curves", guard(curves, False)),
        Route("/api/spectrogram", guard(get_spectrogram, False)),
    ]
    return Starlette(routes=routes)


def host_warning(host: str) -> str | None:
    """A warning line when ``host`` is not a loopback address (the studio is then reachable from the network)."""
    if host in LOOPBACK:
        return None
    return (f"warning: listening on {host}: anyone who can reach this machine can open, edit and download the "
            f"performance (there is no login); use the default 127.0.0.1 unless you mean it")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise MidiDDSPError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    sock.listen(64)
    return sock


class StudioServer:
    """uvicorn serving the app on a socket, in the foreground (:meth:`run`) or in a thread (:meth:`start`).

    ``url`` is the page's address. Tests use ``StudioServer(session, port=0).start()`` ... ``stop()``.
    """

    def __init__(self, session: Session, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.session, self.host = session, host
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host) or (f"[{host}]" if ":" in host else host)
        self.url = f"http://{shown}:{self.port}/"
        names = LOOPBACK + (host,) if host not in ("0.0.0.0", "::") else ("*",)
        self.app = create_app(session, names)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                    lifespan="off"))
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve in the foreground until Ctrl+C or SIGTERM; the render cache is written on the way out."""
        import signal

        # uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM's default action would end
        # the process before the render cache is written, so turn it into an exit that runs the finally below.
        def on_term(signum, frame):
            raise SystemExit(128 + signum)

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, on_term)
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.session.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def start(self) -> "StudioServer":
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.sock.close()
        self.session.close()


__all__ = ["create_app", "StudioServer", "host_warning", "bind", "MAX_BODY_BYTES"]

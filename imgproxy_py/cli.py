"""Command line: ``imgproxy-py serve``, ``imgproxy-py sign PATH`` and ``imgproxy-py health``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from imgproxy_py import __version__, allocator
from imgproxy_py.errors import SettingsError
from imgproxy_py.settings import Settings

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".avif", ".gif")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgproxy-py", description="An imgproxy-compatible image server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server (settings from IMGPROXY_* variables)")
    serve.add_argument("--bind", help="host:port to listen on (IMGPROXY_BIND; default 127.0.0.1:8080)")
    serve.add_argument("--processes", type=int, help="server processes (IMGPROXY_PROCESSES; default 1)")
    sign = commands.add_parser("sign", help="print PATH signed with IMGPROXY_KEY/IMGPROXY_SALT")
    sign.add_argument("path", help="the path after the signature, e.g. /rs:fit:300:300/plain/local:///a.jpg")
    commands.add_parser(
        "health",
        help="exit 0 if the server configured by IMGPROXY_* answers its health check (the container HEALTHCHECK)",
    )
    args = parser.parse_args(argv)

    if args.command == "serve":
        if args.bind:
            os.environ["IMGPROXY_BIND"] = args.bind
        if args.processes is not None:
            os.environ["IMGPROXY_PROCESSES"] = str(args.processes)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"imgproxy-py: invalid configuration: {exc}", file=sys.stderr)
        return 2

    if args.command == "sign":
        from imgproxy_py.security import sign_path

        print(sign_path(settings.security, args.path))
        return 0
    if args.command == "health":
        return _health(settings)
    return _serve(settings)


def health_url(settings: Settings) -> str:
    """Where this configuration's server answers /health: its bind (all interfaces → loopback) and path."""
    server = settings.server
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(server.host, server.host)
    if ":" in host:
        host = f"[{host}]"
    path = server.health_check_path or f"{server.path_prefix}/health"
    return f"http://{host}:{server.port}{path}"


def _health(settings: Settings, timeout: float = 3.0) -> int:
    """The container's health check, from the same settings as the server, so it follows the bind and prefix."""
    # urllib, not httpx: the check runs every few seconds, and importing the standard library is cheaper.
    import urllib.error
    import urllib.request

    url = health_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            ok = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"imgproxy-py: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


def _serve(settings: Settings) -> int:
    # Before anything allocates much: restart under jemalloc when it is installed (allocator.py).
    allocator.reexec_with_jemalloc(settings.workers.malloc, sys.argv[1:])
    import uvicorn

    from imgproxy_py.server.connections import ConnectionLimits, GuardedHttpToolsProtocol, raise_nofile_limit

    raise_nofile_limit()  # before the limits below read it; worker processes inherit it
    GuardedHttpToolsProtocol.limits = ConnectionLimits.from_settings(settings.server)

    metrics_bind = settings.observability.prometheus_bind
    server = settings.server
    multiprocess = bool(metrics_bind) and server.processes > 1
    if multiprocess:
        # Every server process writes its values to files here and the listener below
        # aggregates them. Must be set before prometheus_client is imported. One process
        # keeps its values in memory instead: each update costs a fraction as much.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="imgproxy-py-metrics-")
    from imgproxy_py.observability import configure_logging, start_metrics_server

    configure_logging(settings.observability.log_format, settings.observability.log_level)
    for warning in settings.warnings:  # after logging is set up: JSON logs stay JSON
        logging.getLogger("imgproxy_py.settings").warning(warning)
    os.environ["IMGPROXY_PY_SERVER_PROCESS"] = "1"  # worker processes set their logging up the same way
    try:
        # Build once in the parent so bad presets or paths fail here, with a clear message.
        from imgproxy_py.server.app import create_app

        app = create_app(settings)
    except SettingsError as exc:
        print(f"imgproxy-py: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if metrics_bind:
        start_metrics_server(*metrics_bind, registry=None if multiprocess else app.state.metrics.registry)
    _announce(settings)
    common: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "loop": "uvloop",
        "http": GuardedHttpToolsProtocol,  # httptools with head, idle and connection limits
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": server.graceful_stop_timeout,
        "log_level": settings.observability.log_level,
        "log_config": None,  # keep our logging set-up (JSON or pretty), not uvicorn's
    }
    # uvicorn re-raises SIGTERM/SIGINT to the previous handler after its graceful
    # shutdown; a no-op handler here turns that into a clean exit status 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    if server.processes > 1:
        uvicorn.run("imgproxy_py.server.app:create_app", factory=True, workers=server.processes, **common)
    else:
        uvicorn.run(app, **common)
    return 0


def _announce(settings: Settings) -> None:
    """The start-up banner: a working example URL for a local root. With JSON logs it is a
    ``startup`` event like every other line, never plain text in the middle of the JSON."""
    example = _example_url(settings)
    if settings.observability.log_format == "json":
        fields = {"event": "startup", "version": __version__, "bind": f"{settings.server.host}:{settings.server.port}"}
        if example:
            fields.update(root=settings.sources.local_root or "", example_url=example)
        logging.getLogger("imgproxy_py.cli").info("startup", extra={"fields": fields})
    elif example:
        print(f"\nimgproxy-py: serving {settings.sources.local_root}\n  try: {example}\n", flush=True)


def _example_url(settings: Settings) -> str | None:
    root = settings.sources.local_root
    if not root:
        return None
    samples = sorted(f for f in os.listdir(root) if f.lower().endswith(_IMAGE_SUFFIXES))
    if not samples:
        return None
    from imgproxy_py.security import sign_path

    host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::") else settings.server.host
    path = sign_path(settings.security, f"/rs:fill:300:200/g:sm/plain/local:///{samples[0]}@webp")
    return f"http://{host}:{settings.server.port}{settings.server.path_prefix}{path}"


if __name__ == "__main__":
    raise SystemExit(main())

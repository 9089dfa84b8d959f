"""Command line: ``imgproxy-py serve``, ``imgproxy-py sign PATH`` and ``imgproxy-py purge SOURCE``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from imgproxy_py import allocator
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
    purge = commands.add_parser(
        "purge", help="drop every cached variant of a source from every tier (and, with Redis, every process's L1)"
    )
    purge.add_argument("source", nargs="?", help="the source URL as the server fetches it (after IMGPROXY_BASE_URL)")
    purge.add_argument("--tag", help="the source's tag instead (the Surrogate-Key response header)")
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
    if args.command == "purge":
        return _purge(settings, args.source, args.tag)
    return _serve(settings)


def _serve(settings: Settings) -> int:
    # Before anything allocates much: restart under jemalloc when it is installed (allocator.py).
    allocator.reexec_with_jemalloc(settings.workers.malloc, sys.argv[1:])
    import uvicorn

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
    _print_example(settings)
    common: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "loop": "uvloop",
        "http": "httptools",
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


def _purge(settings: Settings, source: str | None, tag: str | None) -> int:
    import asyncio
    import json
    import re

    from imgproxy_py import keys

    if (source is None) == (tag is None):
        print("imgproxy-py purge: give a source URL or --tag, not both", file=sys.stderr)
        return 2
    if tag is not None and not re.fullmatch(r"[0-9a-f]{16}", tag):
        print("imgproxy-py purge: a tag is 16 hex digits (the Surrogate-Key header)", file=sys.stderr)
        return 2
    tag = tag or keys.source_tag(source or "")
    from imgproxy_py.server.app import build_cache

    cache, _ = build_cache(settings)
    if cache is None or not cache.remote:
        print("imgproxy-py purge: no shared cache tier configured (IMGPROXY_CACHE_REDIS_URL, …)", file=sys.stderr)
        return 2

    async def run() -> dict[str, int | None]:
        try:
            return await cache.purge(tag)
        finally:
            await cache.aclose()

    counts = asyncio.run(run())
    counts.pop("L1", None)  # this command's own, empty memory tier
    print(json.dumps({"tag": tag, "purged": counts}))
    return 1 if any(v is None for v in counts.values()) else 0


def _print_example(settings: Settings) -> None:
    root = settings.sources.local_root
    if not root:
        return
    samples = sorted(f for f in os.listdir(root) if f.lower().endswith(_IMAGE_SUFFIXES))
    if not samples:
        return
    from imgproxy_py.security import sign_path

    host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::") else settings.server.host
    path = sign_path(settings.security, f"/rs:fill:300:200/g:sm/plain/local:///{samples[0]}@webp")
    base = f"http://{host}:{settings.server.port}{settings.server.path_prefix}"
    print(f"\nimgproxy-py: serving {root}\n  try: {base}{path}\n", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

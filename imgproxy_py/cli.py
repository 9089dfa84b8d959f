"""Command line: ``imgproxy-py serve``, ``sign``, ``url``, ``doctor``, ``health``, ``purge`` and
``experiments report`` and ``models``."""

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
from imgproxy_py.quality_model import commands as models_cli
from imgproxy_py.settings import Settings

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".avif", ".gif")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgproxy-py", description="An imgproxy-compatible image server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server (settings from IMGPROXY_* variables)")
    serve.add_argument("--bind", help="host:port to listen on (IMGPROXY_BIND; default 127.0.0.1:8080)")
    serve.add_argument("--processes", type=int, help="server processes (IMGPROXY_PROCESSES; default 1)")
    serve.add_argument(
        "--dev",
        action="store_true",
        help="development defaults (make serve): IMGPROXY_DEVELOPMENT_ERRORS_MODE=true and, unless IMGPROXY_KEY "
        "is set, IMGPROXY_PLAYGROUND=true; variables that are set win",
    )
    sign = commands.add_parser("sign", help="print PATH signed with IMGPROXY_KEY/IMGPROXY_SALT")
    sign.add_argument("path", help="the path after the signature, e.g. /rs:fit:300:300/plain/local:///a.jpg")
    purge = commands.add_parser(
        "purge", help="drop every cached variant of a source from every tier (and, with Redis, every process's L1)"
    )
    purge.add_argument("source", nargs="?", help="the source URL as the server fetches it (after IMGPROXY_BASE_URL)")
    purge.add_argument("--tag", help="the source's tag instead (the Surrogate-Key response header)")
    _add_url_command(commands)
    commands.add_parser(
        "doctor",
        help="print the effective configuration, formats, cache tiers, allocator and risky settings; "
        "exit status 1 on a problem",
    )
    commands.add_parser(
        "health",
        help="exit 0 if the server configured by IMGPROXY_* answers its health check (the container HEALTHCHECK)",
    )
    _add_experiments_command(commands)
    models_cli.add_command(commands)
    args = parser.parse_args(argv)

    if args.command == "serve":
        if args.bind:
            os.environ["IMGPROXY_BIND"] = args.bind
        if args.processes is not None:
            os.environ["IMGPROXY_PROCESSES"] = str(args.processes)
        if args.dev:
            os.environ.setdefault("IMGPROXY_DEVELOPMENT_ERRORS_MODE", "true")
            if not os.environ.get("IMGPROXY_KEY", "").strip():
                os.environ.setdefault("IMGPROXY_PLAYGROUND", "true")
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
    if args.command == "health":
        return _health(settings)

    if args.command == "url":
        return _print_url(settings, args)
    if args.command == "experiments":
        return _experiments_report(settings, args)
    if args.command == "models":
        return models_cli.run(settings, args)
    if args.command == "doctor":
        from imgproxy_py.doctor import diagnose

        report = diagnose(settings)
        report.write(sys.stdout)
        return 0 if report.healthy else 1
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


# `imgproxy-py url`: shortcuts for the common options; anything else with -o NAME:ARG:ARG.
_URL_SHORTCUTS = {
    "width": int,
    "height": int,
    "resizing_type": str,
    "dpr": float,
    "gravity": str,
    "quality": int,
    "format": str,
    "blur": float,
    "sharpen": float,
    "rotate": int,
}


def _add_experiments_command(commands: Any) -> None:
    experiments = commands.add_parser("experiments", help="online experiments (IMGPROXY_EXPERIMENTS)")
    sub = experiments.add_subparsers(dest="experiments_command", required=True)
    report = sub.add_parser(
        "report",
        help="per experiment and arm: requests, mean bytes and processing time with 95%% confidence intervals, "
        "the difference to control, a sample-ratio-mismatch test and a verdict",
    )
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--metrics", metavar="URL", help="the server's Prometheus endpoint, e.g. http://127.0.0.1:9090/metrics"
    )
    source.add_argument("--log", metavar="FILE", help="a JSON access log (IMGPROXY_LOG_FORMAT=json); - for stdin")
    report.add_argument("--namespace", help="metric name prefix (default: IMGPROXY_PROMETHEUS_NAMESPACE)")
    report.add_argument("--json", action="store_true", help="print the report as JSON")


def _experiments_report(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from imgproxy_py.experiments import Experiments, load_experiments
    from imgproxy_py.experiments import report as rep

    if args.metrics:
        import httpx

        try:
            response = httpx.get(args.metrics, timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            print(f"imgproxy-py: cannot read {args.metrics}: {exc}", file=sys.stderr)
            return 2
        namespace = settings.observability.prometheus_namespace if args.namespace is None else args.namespace
        data = rep.from_metrics(response.text, namespace)
    else:
        definitions = load_experiments(settings.experiments)  # the configured shares, for the SRM test
        shares = Experiments(definitions).shares() if definitions is not None else None
        try:
            if args.log == "-":
                data = rep.from_access_log(sys.stdin, shares)
            else:
                with open(args.log, encoding="utf-8", errors="replace") as file:
                    data = rep.from_access_log(file, shares)
        except OSError as exc:
            print(f"imgproxy-py: cannot read {args.log}: {exc}", file=sys.stderr)
            return 2
    summary = rep.summarise(data)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        rep.write_text(summary, sys.stdout)
    return 0


def _add_url_command(commands: Any) -> None:
    url = commands.add_parser(
        "url",
        help="print an imgproxy URL for SOURCE, signed with IMGPROXY_KEY/IMGPROXY_SALT",
        description="e.g. imgproxy-py url --width 300 --height 200 --resizing-type fill -o g:sm --ext webp "
        "local:///a.jpg",
    )
    for name, kind in _URL_SHORTCUTS.items():
        url.add_argument("--" + name.replace("_", "-"), type=kind, help=f"the {name} option")
    url.add_argument("--preset", action="append", default=[], help="a preset name (repeatable)")
    url.add_argument("-o", "--option", action="append", default=[], help="any option as NAME:ARG:ARG (repeatable)")
    url.add_argument("--ext", help="output extension (@ext / .ext)")
    url.add_argument("--base64", action="store_true", help="base64-encode the source URL instead of plain/")
    url.add_argument("--base", default="", help="prefix, e.g. http://127.0.0.1:8080 (default: the path only)")
    url.add_argument("source", help="the source image URL, e.g. local:///a.jpg or https://example.com/a.jpg")


def _print_url(settings: Settings, args: argparse.Namespace) -> int:
    from imgproxy_py.url import URLBuilder

    sec = settings.security
    builder = URLBuilder(
        key=sec.keys[0] if sec.signing_enabled else None,
        salt=sec.salts[0] if sec.signing_enabled else None,
        signature_size=sec.signature_size,
        base=args.base.rstrip("/") + settings.server.path_prefix,
        separator=settings.options.arguments_separator,
    )
    try:
        for name in _URL_SHORTCUTS:
            value = getattr(args, name)
            if value is not None:
                builder = builder.option(name, value)
        if args.preset:
            builder = builder.preset(*args.preset)
        for raw in args.option:
            name, *values = raw.split(settings.options.arguments_separator)
            builder = builder.option(name, *values)
        print(builder.url(args.source, args.ext, encode=args.base64))
    except ValueError as exc:
        print(f"imgproxy-py url: {exc}", file=sys.stderr)
        return 2
    return 0


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


def _announce(settings: Settings) -> None:
    """The start-up banner: a working example URL for a local root. With JSON logs it is a
    ``startup`` event like every other line, never plain text in the middle of the JSON."""
    example = _example_url(settings)
    if settings.observability.log_format == "json":
        fields = {"event": "startup", "version": __version__, "bind": f"{settings.server.host}:{settings.server.port}"}
        if example:
            fields.update(root=settings.sources.local_root or "", example_url=example)
            if settings.server.playground:
                fields["playground_url"] = "/".join(example.split("/", 3)[:3]) + settings.server.path_prefix + "/"
        logging.getLogger("imgproxy_py.cli").info("startup", extra={"fields": fields})
    elif example:
        origin = "/".join(example.split("/", 3)[:3])
        playground = ""
        if settings.server.playground:
            playground = f"  playground: {origin}{settings.server.path_prefix}/\n"
        print(f"\nimgproxy-py: serving {settings.sources.local_root}\n  try: {example}\n{playground}", flush=True)


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

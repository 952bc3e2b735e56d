"""Command line: `fhirserver serve` (and more subcommands as the product grows)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings, SettingsError

log = logging.getLogger("fhirserver")


def _serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from .api import http_errors
    from .app import build_context, create_app
    from .store.embedded import EmbeddedEngine, EmbeddedEngineError

    http_errors.install()

    settings = Settings.from_env(host=args.host, port=args.port, data_dir=args.data_dir, workers=args.workers,
                                 threads=args.threads)
    engine: EmbeddedEngine | None = None
    uri = settings.mongodb_uri
    try:
        if not uri:
            engine = EmbeddedEngine(settings.data_dir)
            uri = engine.start()
        # Create collections and indexes once, before workers fork (they would race each other), and
        # undo any transaction a crashed process left half-written (docs/decisions/0003).
        recovered = build_context(settings, uri)[0].repository.recover()
        if recovered:
            log.warning("undid %d transaction(s) left half-written by an earlier process", recovered)

        class FhirApplication(BaseApplication):  # type: ignore[misc]
            def load_config(self) -> None:
                config: dict[str, Any] = {
                    "bind": f"{settings.host}:{settings.port}",
                    "workers": settings.workers,
                    "worker_class": "gthread",
                    "threads": settings.threads,
                    "timeout": 120,
                    "graceful_timeout": 20,
                    "keepalive": 30,
                    "loglevel": settings.log_level.lower(),
                    "accesslog": None,
                    "proc_name": "fhirserver",
                    "control_socket_disable": True,  # one shared socket path would clash between servers
                }
                for key, value in config.items():
                    self.cfg.set(key, value)

            def load(self) -> Any:
                return create_app(settings, uri)

        log.info("fhirserver %s serving FHIR R4 at http://%s:%s/fhir (%s)", __version__, settings.host,
                 settings.port, "embedded store" if engine else "MongoDB at FHIRSERVER_MONGODB_URI")
        FhirApplication().run()
        return 0
    except EmbeddedEngineError as exc:
        log.error("cannot start the embedded store: %s", exc)
        return 1
    finally:
        if engine is not None:
            engine.stop()


def _load(args: argparse.Namespace) -> int:
    from .loader import LoadError, load

    url = args.url or os.environ.get("FHIRSERVER_BASE_URL") or "http://127.0.0.1:8080/fhir"
    try:
        count = load(url, args.files, batch_size=max(1, args.batch_size))
    except LoadError as exc:
        log.error("load failed: %s", exc)
        return 1
    log.info("loaded %d resources into %s", count, url)
    return 0


def _ingest_dicom(args: argparse.Namespace) -> int:
    from .imaging.ingest import ingest, report

    base = args.url or os.environ.get("FHIRSERVER_BASE_URL") or "http://127.0.0.1:8080/fhir"
    try:
        summary = ingest(base.rstrip("/").rsplit("/fhir", 1)[0] + "/dicomweb", args.paths)
    except OSError as exc:
        log.error("ingest failed: %s", exc)
        return 1
    print(report(summary))
    return 1 if summary.rejected else 0


def _demo(args: argparse.Namespace) -> int:
    import json

    import requests

    from .demo import bundles

    base = (args.url or os.environ.get("FHIRSERVER_BASE_URL") or "http://127.0.0.1:8080/fhir").rstrip("/")
    for bundle in bundles():
        try:
            response = requests.post(base, data=json.dumps(bundle, ensure_ascii=False).encode("utf-8"), timeout=120,
                                     headers={"Content-Type": "application/fhir+json", "Prefer": "return=minimal"})
        except requests.RequestException:
            log.error("cannot reach %s; start the server first (make run)", base)
            return 1
        if response.status_code != 200:
            log.error("the server refused the demo data (HTTP %s): %s", response.status_code, response.text[:500])
            return 1
    print(f"demo network loaded into {base}: hospitals demo-cq-children (requester), demo-cq-yubei, "
          f"demo-cq-township, demo-sc-huaxi; patients demo-xiaoming, demo-wangfang")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fhirserver", description="FHIR R4 server for mutual recognition "
                                                                    "of test and imaging results.")
    parser.add_argument("--version", action="version", version=f"fhirserver {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the FHIR API (starts the embedded store unless "
                                         "FHIRSERVER_MONGODB_URI is set)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1, env FHIRSERVER_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8080, env FHIRSERVER_PORT)")
    serve.add_argument("--data-dir", help="data folder for the embedded store (default ./data, "
                                          "env FHIRSERVER_DATA_DIR)")
    serve.add_argument("--workers", type=int, help="worker processes (default 2, env FHIRSERVER_WORKERS)")
    serve.add_argument("--threads", type=int, help="threads per worker (default 8, env FHIRSERVER_THREADS)")
    load = sub.add_parser("load", help="load Bundle, resource and NDJSON files into a running server")
    load.add_argument("files", nargs="+", type=Path, help="*.json (Bundle or resource) and *.ndjson files")
    load.add_argument("--url", default=None, help="FHIR base URL (default http://127.0.0.1:8080/fhir, "
                                                  "env FHIRSERVER_BASE_URL)")
    load.add_argument("--batch-size", type=int, default=500, help="entries per transaction (default 500)")
    dicom = sub.add_parser("ingest-dicom", help="send DICOM files and folders (recursive) to a running server")
    dicom.add_argument("paths", nargs="+", type=Path, help="DICOM files or folders")
    dicom.add_argument("--url", default=None, help="FHIR base URL of the server (default http://127.0.0.1:8080/fhir)")
    demo = sub.add_parser("demo", help="load the demo Sichuan-Chongqing network into a running server")
    demo.add_argument("--url", default=None, help="FHIR base URL (default http://127.0.0.1:8080/fhir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "load":
            return _load(args)
        if args.command == "ingest-dicom":
            return _ingest_dicom(args)
        if args.command == "demo":
            return _demo(args)
    except SettingsError as exc:
        log.error("configuration error: %s", exc)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())

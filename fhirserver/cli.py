"""Command line: `fhirserver serve` (and more subcommands as the product grows)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings, SettingsError

log = logging.getLogger("fhirserver")


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(host=args.host, port=args.port, data_dir=args.data_dir, workers=args.workers,
                                 threads=args.threads)
    problem = _cannot_serve(settings)
    if problem:
        log.error("%s", problem)
        return 2
    _metrics_folder(args)  # before anything imports prometheus_client
    from gunicorn.app.base import BaseApplication

    from .api import http_errors
    from .app import build_context, create_app
    from .store.client import NotAReplicaSet
    from .store.embedded import EmbeddedEngine, EmbeddedEngineError

    http_errors.install()

    engine: EmbeddedEngine | None = None
    uri = settings.mongodb_uri
    try:
        if not uri:
            engine = EmbeddedEngine(settings.data_dir)
            uri = engine.start()
            engine.watch()  # a dead engine is restarted on the same port; the workers reconnect by themselves
        # Create collections and indexes once, before workers fork (they would race each other).
        build_context(settings, uri)

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
                    # One line per request with its correlation id; the path only, never the query string
                    # (it can hold national IDs) and never the Authorization header.
                    "accesslog": "-",
                    "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s',
                    "proc_name": "fhirserver",
                    "control_socket_disable": True,  # one shared socket path would clash between servers
                }
                for key, value in config.items():
                    self.cfg.set(key, value)

            def load(self) -> Any:
                return create_app(settings, uri)

        if settings.auth == "off":
            log.warning("!" * 78)
            log.warning("AUTHENTICATION IS OFF (FHIRSERVER_AUTH=off): every caller may read and write all data.")
            log.warning("Use this only on a developer machine. Production: FHIRSERVER_AUTH=on with a JWKS.")
            log.warning("!" * 78)
        log.info("fhirserver %s serving FHIR R4 at http://%s:%s/fhir (%s)", __version__, settings.host,
                 settings.port, "embedded store" if engine else "MongoDB at FHIRSERVER_MONGODB_URI")
        FhirApplication().run()
        return 0
    except EmbeddedEngineError as exc:
        log.error("cannot start the embedded store: %s", exc)
        return 2
    except NotAReplicaSet as exc:
        log.error("cannot use the store: %s", exc)
        return 2
    finally:
        if engine is not None:
            engine.stop()


def _cannot_serve(settings: Settings) -> str | None:
    """One sentence for the mistakes that would otherwise end in a traceback or a riddle, checked before anything
    starts: the port taken, the data folder used by another server, or not a writable folder."""
    import socket

    from .store.embedded import running_engine_uri

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError:
            return (f"port {settings.port} on {settings.host} is already in use (another server?); stop it, or "
                    f"choose another port with --port or FHIRSERVER_PORT")
    if settings.mongodb_uri:
        return None
    folder = settings.data_dir
    if folder.exists() and not folder.is_dir():
        return (f"the data folder {folder} is a file, not a folder; choose another with --data-dir or "
                f"FHIRSERVER_DATA_DIR")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / ".write-test"
        marker.write_text("", encoding="utf-8")
        marker.unlink()
    except OSError as exc:
        return (f"the data folder {folder} cannot be written ({exc.strerror or exc}); choose another with "
                f"--data-dir or FHIRSERVER_DATA_DIR")
    uri = running_engine_uri(folder)
    if uri:
        import pymongo

        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=500) as client:
            try:
                client.admin.command("ping")
            except pymongo.errors.PyMongoError:
                return None  # a state file left by a server that was killed: its engine is gone
        return (f"another server already uses the data folder {folder} (its embedded engine answers at {uri}); "
                f"stop it first, or give this one its own --data-dir")
    return None


def _metrics_folder(args: argparse.Namespace) -> None:
    """prometheus_client multiprocess mode: a fresh folder, named before any worker imports the client."""
    import shutil

    data_dir = Path(args.data_dir or os.environ.get("FHIRSERVER_DATA_DIR") or "data")
    folder = data_dir / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


CLIENT_URL_HELP = ("FHIR base URL of the server (default $FHIRSERVER_BASE_URL, else "
                   "http://127.0.0.1:$FHIRSERVER_PORT/fhir, port 8080 when unset)")


def _client_base(args: argparse.Namespace) -> str:
    """Where the client commands (load, ingest-dicom, demo) send to: --url, else the server's own settings, so
    they reach a server started in the same shell the way `serve` reads them."""
    port = os.environ.get("FHIRSERVER_PORT") or "8080"
    return (args.url or os.environ.get("FHIRSERVER_BASE_URL") or f"http://127.0.0.1:{port}/fhir").rstrip("/")


def _load(args: argparse.Namespace) -> int:
    from .loader import LoadError, load

    url = _client_base(args)
    try:
        count = load(url, args.files, batch_size=max(1, args.batch_size))
    except LoadError as exc:
        log.error("load failed: %s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("load interrupted: every batch the server answered is stored whole (each is one transaction), "
                  "the one in flight is stored whole or not at all. Running the same load again is safe for resources "
                  "with an id (written with PUT: nothing is duplicated); those without one are created again")
        return 130
    log.info("loaded %d resources into %s", count, url)
    return 0


def _ingest_dicom(args: argparse.Namespace) -> int:
    from .imaging.ingest import ingest, report

    base = _client_base(args)
    try:
        summary = ingest(base.rstrip("/").rsplit("/fhir", 1)[0] + "/dicomweb", args.paths)
    except OSError as exc:
        log.error("ingest failed: %s", exc)
        return 1
    print(report(summary))
    return 130 if summary.interrupted else 1 if summary.rejected else 0


def _demo_images(base: str, headers: dict[str, str]) -> bool:
    """STOW the demo CT series (16 slices of a head phantom) as the township centre's PACS would."""
    import requests

    from .demo_images import ct_series, multipart

    body, content_type = multipart(ct_series())
    url = f"{base.rsplit('/fhir', 1)[0]}/dicomweb/studies"
    response = requests.post(url, data=body, timeout=120, headers={"Content-Type": content_type,
                                                                   "Accept": "application/dicom+json", **headers})
    if response.status_code != 200:
        log.error("the server refused the demo CT series (HTTP %s): %s", response.status_code, response.text[:500])
        return False
    return True


def _demo(args: argparse.Namespace) -> int:
    import json

    import requests

    from .demo import bundles, owned_bundles
    from .security.principal import bearer_header

    base = _client_base(args)
    loads = [(bearer_header(), bundle) for bundle in bundles()]
    stow_headers = bearer_header()  # the township centre's PACS sends the CT series
    try:
        settings: Settings | None = Settings.from_env()
    except SettingsError:  # e.g. this shell has none of the server's auth settings: load without tokens
        settings = None
    if settings is not None and settings.auth == "on" and not bearer_header() and settings.auth_hs256_secret:
        # Authentication on with development tokens: each hospital writes what it owns, with its own token.
        from .security.tokens import issue_development_token

        def header(owner: str) -> dict[str, str]:
            assert settings is not None
            if owner.startswith("Practitioner/"):  # the children's hospital's doctor, who attests the consent
                token = issue_development_token(settings, "demo-doctor", "user/*.cruds",
                                                "Organization/demo-cq-children", owner)
            else:
                token = issue_development_token(settings, f"demo-loader-{owner}", "system/*.cruds",
                                                f"Organization/{owner}")
            return {"Authorization": f"Bearer {token}"}

        loads = [(header(owner), bundle) for owner, bundle in owned_bundles()]
        stow_headers = header("demo-cq-township")
    for number, (headers, bundle) in enumerate(loads):
        try:
            response = requests.post(base, data=json.dumps(bundle, ensure_ascii=False).encode("utf-8"), timeout=120,
                                     headers={"Content-Type": "application/fhir+json", "Prefer": "return=minimal",
                                              **headers})
        except requests.RequestException:
            log.error("cannot reach %s; start the server first (make run)", base)
            return 1
        except KeyboardInterrupt:
            log.error("demo interrupted (Ctrl-C) after %d of %d transactions, each stored whole; running the demo "
                      "again is safe (it writes the same ids, nothing is duplicated)", number, len(loads))
            return 130
        if response.status_code != 200:
            log.error("the server refused the demo data (HTTP %s): %s", response.status_code, response.text[:500])
            if response.status_code in (401, 403):
                log.error("with authentication on, run the demo with the server's FHIRSERVER_AUTH_HS256_SECRET "
                          "and FHIRSERVER_AUTH_ISSUER set (each hospital's data is then written with its own "
                          "token), or set FHIRSERVER_TOKEN to a token allowed to write all of it")
            return 1
    if not _demo_images(base, stow_headers):
        return 1
    print(f"demo network loaded into {base}: hospitals demo-cq-children (requester), demo-cq-yubei, "
          f"demo-cq-township, demo-sc-huaxi; patients demo-xiaoming (and the children's hospital's own record "
          f"demo-xiaoming-et, with a Consent), demo-wangfang")
    return 0


def _token(args: argparse.Namespace) -> int:
    from .security.tokens import issue_development_token

    settings = Settings.from_env()
    try:
        print(issue_development_token(settings, args.subject, args.scope, args.organization, args.practitioner,
                                      args.patient, lifetime_s=args.lifetime))
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    import pymongo

    from .security.audit import verify
    from .store.audit_log import AuditLog
    from .store.embedded import running_engine_uri

    # A local tool reading the store directly: the server's authentication settings do not concern it.
    settings = Settings.from_env({**os.environ, "FHIRSERVER_AUTH": "off"}, data_dir=args.data_dir)
    uri = settings.mongodb_uri or running_engine_uri(settings.data_dir)
    if not uri:
        log.error("no store: set FHIRSERVER_MONGODB_URI, or run this while the server with --data-dir %s runs",
                  settings.data_dir)
        return 2
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=settings.store_timeout_ms) as client:
        audit_log = AuditLog(client[settings.mongodb_db])
        problems = list(verify(audit_log, settings.canonical_base))
        head = audit_log.head() or {"seq": 0, "hash": "-"}
        waiting = audit_log.pending()
    for problem in problems:
        print(f"position {problem.sequence}: {problem.text}")
    print(f"{head['seq']} events in the chain, head {head['hash']}: "
          f"{'INTACT' if not problems else f'{len(problems)} PROBLEM(S)'}")
    if waiting:
        print(f"{waiting} more events wait in the spool; a running server chains them within a second")
    return 1 if problems else 0


def _peering(args: argparse.Namespace) -> int:
    from .federation.registration import parse_node, register

    try:
        nodes = [parse_node(text) for text in args.node]
        written = register(nodes)
    except (ValueError, RuntimeError) as exc:
        log.error("peering failed: %s", exc)
        return 1
    log.info("registered %d peer Endpoint(s) among %d nodes", written, len(nodes))
    if args.demo:
        return _demo(argparse.Namespace(url=args.demo))
    return 0


def _bench(args: argparse.Namespace) -> int:
    import subprocess

    from .config import PROJECT_ROOT

    module = "bench.federation" if args.federation else "bench.run"
    if not (PROJECT_ROOT / "bench" / "run.py").is_file():
        log.error("the benchmarks ship with the source tree (bench/); run this from a clone")
        return 2
    return subprocess.call([sys.executable, "-m", module, "--scale", args.scale, "--clients", str(args.clients)],
                           cwd=PROJECT_ROOT)


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
    load.add_argument("--url", default=None, help=CLIENT_URL_HELP)
    load.add_argument("--batch-size", type=int, default=500, help="entries per transaction (default 500)")
    dicom = sub.add_parser("ingest-dicom", help="send DICOM files and folders (recursive) to a running server")
    dicom.add_argument("paths", nargs="+", type=Path, help="DICOM files or folders")
    dicom.add_argument("--url", default=None, help=CLIENT_URL_HELP)
    demo = sub.add_parser("demo", help="load the demo Sichuan-Chongqing network into a running server")
    demo.add_argument("--url", default=None, help=CLIENT_URL_HELP)
    token = sub.add_parser("token", help="issue a development token (HS256, FHIRSERVER_AUTH_HS256_SECRET)")
    token.add_argument("--subject", default="demo-client", help="sub claim (default demo-client)")
    token.add_argument("--scope", default="system/*.cruds", help="SMART scopes, space-separated")
    token.add_argument("--organization", default=None, help="Organization/<id> the client acts for")
    token.add_argument("--practitioner", default=None, help="fhirUser: Practitioner/<id> (user tokens)")
    token.add_argument("--patient", default=None, help="Patient/<id> for patient-context tokens")
    token.add_argument("--lifetime", type=int, default=3600, help="seconds (default 3600)")
    audit = sub.add_parser("audit", help="audit trail tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    check = audit_sub.add_parser("verify", help="recompute the audit hash chain; exit 1 on any break")
    check.add_argument("--data-dir", help="data folder of the embedded store (default ./data)")
    peering = sub.add_parser("peering", help="register each node as the others' peer (Endpoint resources)")
    peering.add_argument("--node", action="append", required=True,
                         help="<FHIR base URL>=<name>=<region>, e.g. http://sichuan:8080/fhir=sichuan=510000")
    peering.add_argument("--demo", default=None, help="also load the demo network into this FHIR base URL")
    bench = sub.add_parser("bench", help="run the benchmarks of bench/ (same as make bench)")
    bench.add_argument("--scale", choices=("tiny", "small", "medium", "large"), default="small")
    bench.add_argument("--clients", type=int, default=4)
    bench.add_argument("--federation", action="store_true", help="federated $duplicate-check vs local-only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        commands: dict[str, Callable[[argparse.Namespace], int]] = {
            "serve": _serve, "load": _load, "ingest-dicom": _ingest_dicom, "demo": _demo, "token": _token,
            "bench": _bench, "peering": _peering, "audit": _audit_verify}
        if args.command in commands:
            return commands[args.command](args)
    except SettingsError as exc:
        log.error("configuration error: %s", exc)
        return 2
    except KeyboardInterrupt:  # before a command could say what it had done (still starting up)
        log.error("interrupted (Ctrl-C) before anything was sent or stored")
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())

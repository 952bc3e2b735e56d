"""The embedded MongoDB wire-protocol engine: SecantusDB (MongoDB semantics on WiredTiger, MongoDB's own
storage engine), run as a child process over the wire.

Started bound to 127.0.0.1 on a free port, data under <data-dir>/wiredtiger, so the server talks to it through
pymongo exactly as it would to a MongoDB replica set (it answers as a single-node replica set: real
multi-document transactions, multikey indexes, change streams). The project never imports the engine's code:
SecantusDB is GPL-2.0-only beta software, launched as a separate program (docs/decisions/0008). The child is
asked to die with its parent (Linux PR_SET_PDEATHSIG) so a killed server never leaves an orphan holding files.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pymongo
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)

STATE_FILE = "embedded-mongo.json"
ENGINE_FOLDER = "wiredtiger"


def cache_size() -> str:
    """The embedded engine's WiredTiger cache: FHIRSERVER_ENGINE_CACHE, else a quarter of the memory (1-8 GB).
    Measured 2026-12-01 (secantusdb 0.7.0b3): with a 256 MB cache, commits stalled for minutes once the data
    outgrew it (~80,000 results); with 4 GB the 110,000-resource benchmark ran through. MongoDB's own default
    is half the memory; production sizes its own."""
    configured = os.environ.get("FHIRSERVER_ENGINE_CACHE")
    if configured:
        return configured
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "1G"
    return f"{min(8, max(1, memory // 4 // 2**30))}G"

# The engine prunes its oplog every 1,000 writes once it holds more than its cap (100,000 entries by default), and
# each prune walks the deleted entries at the head of 17 tables under its global lock: at 100,000 results a commit
# stalled for minutes (measured 2026-12-01, secantusdb 0.7.0b3). Nothing here reads the oplog (no change streams),
# so it is never pruned: one small entry per write stays on disk (docs/decisions/0008).
OPLOG_NEVER_PRUNED = ("--oplog-max-entries", str(10**15), "--oplog-retention-seconds", str(100 * 365 * 86400))
# Same entry point as the `secantusd-py` console script, but with this interpreter (no PATH lookup).
_LAUNCH = "import sys; from secantus.cli import main; sys.argv[0] = 'secantusd-py'; sys.exit(main())"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindable(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:port now (as the engine does: SO_REUSEADDR, past TIME_WAIT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _alive(process: subprocess.Popen[bytes]) -> bool:
    """Whether the child still runs. Not Popen.poll() alone: gunicorn's master reaps every child that exits, after
    which poll() cannot tell; the pid and its /proc state can (a zombie is dead)."""
    if process.poll() is not None:
        return False
    try:
        os.kill(process.pid, 0)
        with open(f"/proc/{process.pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False
    except OSError:
        return True  # no /proc (not Linux): the pid exists


def _die_with_parent() -> None:
    """preexec_fn: deliver SIGTERM to the engine when the process that started it exits."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedEngineError(RuntimeError):
    pass


def _last_line(path: Path) -> str:
    """The engine's own last words (the exception line of its traceback), to say inline why it stopped."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 8192))
            lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1][:300] if lines else "no output"


class EmbeddedEngine:
    """Owns one engine child process; `start()` returns a MongoDB URI once the engine answers."""

    def __init__(self, data_dir: Path, startup_timeout: float = 60.0) -> None:
        self.data_dir = data_dir.resolve()
        self.engine_dir = self.data_dir / ENGINE_FOLDER
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.uri: str | None = None
        self._port: int | None = None
        self._stopping = threading.Event()
        self._guard = threading.RLock()  # the watchdog holds it while start() may terminate a failed engine

    @property
    def output_path(self) -> Path:
        return self.data_dir / "engine.out"

    def start(self) -> str:
        import importlib.util

        if importlib.util.find_spec("secantus") is None:
            raise EmbeddedEngineError("the embedded engine is not installed: pip install 'fhirserver[embedded]' "
                                      "(make run does), or set FHIRSERVER_MONGODB_URI to a MongoDB replica set")
        self.engine_dir.parent.mkdir(parents=True, exist_ok=True)
        port = self._port or _free_port()  # a restart keeps the port: the workers' connections find it again
        if self._port is not None and not _bindable(port):
            # Never launch an engine that cannot listen: it would open (and recover) the data, then die; a series
            # of such starts after a crash lost acknowledged writes in our tests (SecantusDB 0.7).
            raise EmbeddedEngineError(f"port {port} is still taken; the engine is not started until it is free")
        self._port = port
        self._stopping.clear()
        command = [
            sys.executable, "-c", _LAUNCH,
            "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(self.engine_dir),
            "--cache-size", cache_size(), "--log-level", "WARNING",
            *OPLOG_NEVER_PRUNED,
        ]
        with self.output_path.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent, close_fds=True, cwd=self.data_dir,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        self._wait_until_ready()
        (self.data_dir / STATE_FILE).write_text(
            json.dumps({"uri": self.uri, "pid": self.process.pid}), encoding="utf-8")
        log.info("embedded MongoDB engine (SecantusDB) pid %s at %s, data in %s",
                 self.process.pid, self.uri, self.engine_dir)
        return self.uri

    def _wait_until_ready(self) -> None:
        assert self.process is not None and self.uri is not None
        deadline = time.monotonic() + self.startup_timeout
        client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250)
        try:
            while time.monotonic() < deadline:
                if not _alive(self.process):
                    raise EmbeddedEngineError(f"the embedded engine exited ({_last_line(self.output_path)}); "
                                              f"see {self.output_path}")
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    time.sleep(0.05)
        finally:
            client.close()
        self._terminate()
        raise EmbeddedEngineError(f"the embedded engine did not answer within {self.startup_timeout:.0f}s")

    def watch(self, interval_s: float = 0.5, attempts: int = 30) -> threading.Thread:
        """Restart the engine whenever it dies (same port and data), with back-off, at most `attempts` times in a row;
        then it stays down and the health check says so. Runs in a thread of the process that started it."""
        def loop() -> None:
            failures = 0
            while not self._stopping.wait(interval_s):
                with self._guard:
                    process = self.process
                    if self._stopping.is_set() or process is None or _alive(process):
                        continue
                    log.error("the embedded engine (pid %s) stopped; restarting it (see %s)", process.pid,
                              self.output_path)  # its exit code is not known: gunicorn's master reaps children
                    try:
                        self.start()
                        log.warning("the embedded engine is back (pid %s)", self.process.pid if self.process else "?")
                        failures = 0
                        continue
                    except Exception as exc:  # noqa: BLE001 - keep trying, with back-off, and say why
                        failures += 1
                        log.error("restarting the embedded engine failed (%s, attempt %s of %s)", exc, failures,
                                  attempts)
                        if failures >= attempts:
                            log.critical("the embedded engine stays down after %s attempts; restart the server",
                                         attempts)
                            return
                        self._stopping.wait(min(5.0, 0.5 * 2 ** failures))

        thread = threading.Thread(target=loop, name="engine-watchdog", daemon=True)
        thread.start()
        return thread

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (WiredTiger checkpoints and closes), wait, then SIGKILL: its log keeps committed data either way.
        The watchdog, if any, stops restarting it."""
        self._stopping.set()
        self._terminate(timeout)

    def _terminate(self, timeout: float = 20.0) -> None:
        with self._guard:
            process, self.process = self.process, None
        if process is None or not _alive(process):
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        with contextlib.suppress(OSError):
            (self.data_dir / STATE_FILE).unlink()
        log.info("embedded MongoDB engine stopped")

    def __enter__(self) -> EmbeddedEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_engine_uri(data_dir: Path) -> str | None:
    """The URI of the engine a running server started for this data dir (for tools and tests)."""
    state = data_dir / STATE_FILE
    if not state.is_file():
        return None
    return str(json.loads(state.read_text(encoding="utf-8"))["uri"])


def _main() -> None:  # pragma: no cover - manual use: python -m fhirserver.store.embedded DIR
    engine = EmbeddedEngine(Path(sys.argv[1] if len(sys.argv) > 1 else "data"))
    print(engine.start(), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: engine.stop())
    with contextlib.suppress(KeyboardInterrupt):
        while engine.process and engine.process.poll() is None:
            time.sleep(0.5)
    engine.stop()


if __name__ == "__main__":  # pragma: no cover
    _main()

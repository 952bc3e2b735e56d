"""The embedded MongoDB wire-protocol engine (nx-27017, MongoDB protocol over SQLite).

Started as a child process bound to 127.0.0.1 on a free port, data under <data-dir>/mongo, so the
server talks to it through pymongo exactly as it would to MongoDB. The child is asked to die with
its parent (Linux PR_SET_PDEATHSIG) so a killed server never leaves an orphan engine holding files.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymongo
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)

STATE_FILE = "embedded-mongo.json"
# Same entry point as the `nx-27017` console script, but with this interpreter (no PATH lookup).
_LAUNCH = "import sys; from nx_27017.nx_27017 import main; sys.argv[0] = 'nx-27017'; sys.exit(main())"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """preexec_fn: deliver SIGTERM to the engine when the process that started it exits."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedEngineError(RuntimeError):
    pass


class EmbeddedEngine:
    """Owns one nx-27017 child process; `start()` returns a MongoDB URI once the engine answers."""

    def __init__(self, data_dir: Path, startup_timeout: float = 30.0) -> None:
        self.data_dir = data_dir.resolve()
        self.mongo_dir = self.data_dir / "mongo"
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.uri: str | None = None

    def start(self) -> str:
        self.mongo_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        log_file = self.mongo_dir / "engine.log"
        command = [
            sys.executable, "-c", _LAUNCH,
            "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(self.mongo_dir),
            "--log-file", str(log_file),
            "--pid-file", str(self.mongo_dir / "engine.pid"),
        ]
        with (self.mongo_dir / "engine.out").open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent, close_fds=True,
            )
        self.uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        self._wait_until_ready()
        (self.data_dir / STATE_FILE).write_text(
            json.dumps({"uri": self.uri, "pid": self.process.pid}), encoding="utf-8")
        log.info("embedded MongoDB engine (nx-27017) pid %s at %s, data in %s",
                 self.process.pid, self.uri, self.mongo_dir)
        return self.uri

    def _wait_until_ready(self) -> None:
        assert self.process is not None and self.uri is not None
        deadline = time.monotonic() + self.startup_timeout
        client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise EmbeddedEngineError(
                        f"the embedded engine exited with code {self.process.returncode}; "
                        f"see {self.mongo_dir / 'engine.out'}")
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise EmbeddedEngineError(f"the embedded engine did not answer within {self.startup_timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait, then SIGKILL: SQLite's WAL keeps committed data either way."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
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

"""Every shell example in README.md runs as written, in order, against a server started the way `make run` starts
one (issue 20: a newcomer's first hour).

How a block is run:
- Fenced ```sh blocks run in README order in one working folder (holding `.venv` and `examples/` as in a
  checkout), each with the variables the earlier blocks set (`B`, `J`, `H`, `D`, ...). A block marked
  ```sh no-run is not run: the two commands themselves (this test runs inside `make test`, and the server it
  starts is `make run`'s), a production replica set, and docker compose.
- `127.0.0.1:8080` becomes the port of the server under test; `make run` is the server already started (the
  Makefile's recipe, checked below) and `make demo` runs the Makefile's demo recipe; `<id>` is the id the first
  create answered (its Location header). Any other `<placeholder>` fails the test.
- A block that starts its own server (`fhirserver serve &`) runs in a folder and on a port of its own; everything
  it started is stopped afterwards.

What a block must do: exit 0 (`set -euo pipefail`); no HTTP answer 5xx or a failed connection; an answer of 4xx
only where the block's comments name that status; every `demo-*` or `example-*` id and every `backticked` text in
its `# ->` comments in what it printed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)
PLACEHOLDER = re.compile(r"<([a-z][a-z0-9-]*)>")
HTTP = re.compile(r"^@@http (\d{3}) (\S*)$", re.M)
LOCATION = re.compile(r"^Location: \S*/Observation/([A-Za-z0-9.-]+)/_history/", re.M | re.I)
MENTIONED = re.compile(r"`([^`]+)`|\b((?:demo|example)-[a-z0-9-]*[a-z0-9])\b")
SHIM = """set -euo pipefail
set -a
curl() { command curl -w '%{stderr}@@http %{http_code} %{url_effective}\\n' "$@"; }
"""


@dataclass
class Block:
    line: int  # where it starts in README.md, for messages
    text: str

    @property
    def starts_a_server(self) -> bool:
        return bool(re.search(r"fhirserver serve\b[^\n]*&\s*$", self.text, re.M))

    def comments(self) -> str:
        return "\n".join(line.split("#", 1)[1] for line in self.text.splitlines() if "#" in line)

    def expected(self) -> list[str]:
        """What the block's `# ->` comments promise it prints."""
        promised = "\n".join(line.split("# ->", 1)[1] for line in self.text.splitlines() if "# ->" in line)
        return [a or b for a, b in MENTIONED.findall(promised)]


def readme_blocks() -> list[Block]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [Block(text[: m.start()].count("\n") + 1, m.group(3)) for m in FENCE.finditer(text)
            if m.group(1) == "sh" and "no-run" not in m.group(2)]


def test_the_makefile_recipes_are_what_the_examples_assume() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\tFHIRSERVER_AUTH=$${FHIRSERVER_AUTH:-off} $(BIN)/fhirserver serve\n" in makefile
    assert "\t$(BIN)/fhirserver demo\n" in makefile


def test_no_example_needs_a_file_the_repository_does_not_ship() -> None:
    for block in readme_blocks():
        for name in re.findall(r"(?:@|\s)(examples/[\w./-]+)", block.text):
            assert (ROOT / name).exists(), f"README.md:{block.line} uses {name}, which is not in the repository"
        for name in re.findall(r"@([\w./-]+)", block.text):
            assert (ROOT / name).exists(), f"README.md:{block.line} sends @{name}, which is not in the repository"


class Folder:
    """A working folder laid out like a checkout (`.venv`, `examples/`), with a port for the server in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        path.mkdir(parents=True, exist_ok=True)
        (path / ".venv").symlink_to(Path(sys.prefix))  # the environment running the tests (make test's .venv)
        (path / "examples").symlink_to(ROOT / "examples")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRSERVER_")}
        self.env.update({"FHIRSERVER_PORT": str(self.port), "HOME": str(path)})
        if os.environ.get("FHIRSERVER_MONGODB_URI"):  # a run against a real replica set: a database of our own
            self.env.update({"FHIRSERVER_MONGODB_URI": os.environ["FHIRSERVER_MONGODB_URI"],
                             "FHIRSERVER_MONGODB_DB": f"readme_{uuid.uuid4().hex[:8]}"})
        self.values: dict[str, str] = {}

    def script(self, block: Block) -> str:
        lines = []
        for line in block.text.splitlines():
            if re.match(r"make run\b", line):
                line = ":  # make run: the server this test started the same way"
            elif re.match(r"make demo\b", line):
                line = ".venv/bin/fhirserver demo"
            lines.append(line)
        text = "\n".join(lines).replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in self.values, f"README.md:{block.line}: placeholder <{name}> has no value from earlier steps"
            return self.values[name]

        return PLACEHOLDER.sub(fill, text)

    def run(self, block: Block, timeout: float = 300.0) -> tuple[str, str]:
        state = self.path / f".state-{block.line}"
        out_path, err_path = self.path / f".out-{block.line}", self.path / f".err-{block.line}"
        script = f'{SHIM}{self.script(block)}\nenv -0 > "{state}"\n'
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(["bash", "-c", script], cwd=self.path, env=self.env, stdout=out, stderr=err,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                code = -1
            finally:
                if block.starts_a_server or code == -1:
                    _stop_group(process.pid)
        stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
        assert code == 0, (f"README.md:{block.line}: the example exited with {code}\n--- script\n{script}\n"
                           f"--- stdout\n{stdout[-3000:]}\n--- stderr\n{stderr[-3000:]}")
        if state.exists():
            pairs = [item.split("=", 1) for item in state.read_text(errors="replace").split("\0") if "=" in item]
            self.env = {k: v for k, v in pairs if not k.startswith("BASH_FUNC_") and k not in ("SHLVL", "_", "OLDPWD")}
        found = LOCATION.search(stdout)
        if found and "id" not in self.values:
            self.values["id"] = found.group(1)
        return stdout, stderr


def _stop_group(pgid: int) -> None:
    """Stop everything a block started (a server in the background and its engine), gently first."""
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def _check(block: Block, stdout: str, stderr: str) -> None:
    allowed = {int(code) for code in re.findall(r"\b([45]\d\d)\b", block.comments())}
    for code, url in HTTP.findall(stderr):
        if url.endswith(("/readyz", "/healthz")):
            continue  # waiting for a server to start
        status = int(code)
        assert status != 0, f"README.md:{block.line}: could not connect to {url}"
        assert status < 500, f"README.md:{block.line}: {url} answered {status}\n{stdout[-2000:]}"
        assert status < 400 or status in allowed, \
            f"README.md:{block.line}: {url} answered {status}, which the example does not say\n{stdout[-2000:]}"
    printed = stdout + stderr
    for promise in block.expected():
        assert promise in printed, f"README.md:{block.line}: the example promises {promise!r}\n{printed[-3000:]}"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Folder]:
    """A folder and a server in it started as `make run` starts one (authentication off, embedded engine)."""
    folder = Folder(tmp_path_factory.mktemp("readme"))
    log = (folder.path / "server.log").open("wb")
    server = subprocess.Popen([".venv/bin/fhirserver", "serve"], cwd=folder.path, stdout=log, stderr=subprocess.STDOUT,
                              env={**folder.env, "FHIRSERVER_AUTH": "off"}, stdin=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{folder.port}/readyz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert server.poll() is None and time.monotonic() < deadline, (folder.path / "server.log").read_text()[-3000:]
        time.sleep(0.3)
    yield folder
    _stop_group(server.pid)
    shutil.rmtree(folder.path, ignore_errors=True)


def test_every_readme_example_runs_as_written(local: Folder, tmp_path: Path) -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 20, "the README's examples were not found"
    for block in blocks:
        folder = Folder(tmp_path / f"own-{block.line}") if block.starts_a_server else local
        stdout, stderr = folder.run(block)
        _check(block, stdout, stderr)

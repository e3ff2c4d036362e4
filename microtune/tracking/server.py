"""A local ``mlflow server`` per project: start it, find it again, stop it by its PID.

Many processes writing one SQLite file race (DESIGN.md), so a local sweep routes every write
through one tracking server bound to 127.0.0.1 with an absolute SQLite store and a served artifact
directory inside the project::

    <project>/mlflow.db                      backend store (sqlite:////abs/path/mlflow.db)
    <project>/mlartifacts/                   artifacts, served by the server (--serve-artifacts)
    <project>/.microtune/mlflow-server.json  {uri, pid, port, host, backend_store_uri, log, ...}
    <project>/.microtune/mlflow-server.log   the server's stdout and stderr

:func:`ensure_local_server` reuses the recorded server when its process is alive, belongs to this
store and answers ``GET /health``; otherwise it starts one (``--workers 1`` and
``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` keep it near 0.5 GB) and waits until it is healthy.
The server runs in its own session, so :meth:`LocalServer.stop` can end it and the uvicorn worker
it spawns through that process group, found from our recorded PID only.

This module runs the ``mlflow`` command line; it does not import the mlflow package.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from microtune.errors import MicrotuneError
from microtune.io import atomic_write_json, exclusive

STATE_DIR = ".microtune"
RECORD_NAME = "mlflow-server.json"
LOG_NAME = "mlflow-server.log"
DB_NAME = "mlflow.db"
ARTIFACTS_NAME = "mlartifacts"
LOOPBACK = "127.0.0.1"


@dataclass
class LocalServer:
    """A running ``mlflow server`` of one project.

    Attributes
    ----------
    uri : str
        Tracking URI, ``http://127.0.0.1:PORT``.
    pid : int
        PID of the ``mlflow server`` process (leader of its own process group).
    port : int
        TCP port on 127.0.0.1.
    backend_store_uri : str
        Absolute ``sqlite:////…/mlflow.db`` URI of the store.
    log_path : pathlib.Path
        File that receives the server's output.
    record_path : pathlib.Path
        JSON file through which later commands find this server.
    started : bool
        True when this call started the server, False when it reused a running one.
    """

    uri: str
    pid: int
    port: int
    backend_store_uri: str
    log_path: Path
    record_path: Path
    started: bool
    _process: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def is_alive(self) -> bool:
        """Whether the server process still exists (a zombie child counts as gone)."""
        if self._process is not None:
            return self._process.poll() is None
        return _pid_alive(self.pid)

    def is_healthy(self, timeout_s: float = 2.0) -> bool:
        """Whether ``GET /health`` answers 200 within ``timeout_s`` seconds."""
        return health_ok(self.uri, timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server: SIGTERM to its PID, then its process group; SIGKILL after ``timeout_s``.

        Only the recorded PID and the process group it leads are signalled; nothing is found by
        name. The project's record is removed when it still names this server.
        """
        _terminate_group(self.pid, self._process, timeout_s)
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, OSError):
            if json.loads(self.record_path.read_text()).get("pid") == self.pid:
                self.record_path.unlink()


def health_ok(uri: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET {uri}/health`` answers 200 (proxies bypassed: the server is local)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(uri.rstrip("/") + "/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def ensure_local_server(
    project_dir: str | os.PathLike,
    *,
    port: int | None = None,
    host: str = LOOPBACK,
    startup_timeout_s: float = 180.0,
) -> LocalServer:
    """Reuse the project's running MLflow server, or start one and wait until it is healthy.

    Parameters
    ----------
    project_dir : path-like
        Project directory; the store, artifacts and server record live inside it.
    port : int, optional
        TCP port; a free one is chosen when omitted. A running server on another port is reused
        only when no port is asked for.
    host : str
        Address to bind; loopback unless told otherwise (DESIGN.md: servers bind to 127.0.0.1).
    startup_timeout_s : float
        Seconds to wait for ``GET /health`` (start-up takes ~15 s on two busy cores).

    Returns
    -------
    LocalServer
        With ``started`` telling whether this call started it (stop only what you started).

    Raises
    ------
    MicrotuneError
        The port is taken, or the server exited or stayed unhealthy; the message names the log.
    """
    project = Path(project_dir).expanduser().resolve()
    state = project / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    record_path = state / RECORD_NAME
    backend = "sqlite:///" + str(project / DB_NAME)  # absolute path: four slashes in total
    with exclusive(state / (RECORD_NAME + ".lock")):
        found = _reusable(record_path, backend, port)
        if found is not None:
            return found
        return _start(project, record_path, backend, port, host, startup_timeout_s)


def find_local_server(project_dir: str | os.PathLike) -> LocalServer | None:
    """The project's recorded server if it is alive and healthy, else None (starts nothing)."""
    project = Path(project_dir).expanduser().resolve()
    return _reusable(project / STATE_DIR / RECORD_NAME, "sqlite:///" + str(project / DB_NAME), None)


def _reusable(record_path: Path, backend: str, port: int | None) -> LocalServer | None:
    try:
        rec = json.loads(record_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None
    pid = int(rec.get("pid", 0))
    if rec.get("backend_store_uri") != backend or (port is not None and rec.get("port") != port):
        return None
    if not _pid_alive(pid) or not _cmdline_mentions(pid, backend) or not health_ok(rec["uri"]):
        return None
    return LocalServer(
        uri=rec["uri"], pid=pid, port=int(rec["port"]), backend_store_uri=backend,
        log_path=Path(rec["log"]), record_path=record_path, started=False,
    )


def _start(project: Path, record_path: Path, backend: str, port: int | None, host: str,
           timeout_s: float) -> LocalServer:
    if port is None:
        port = free_port(host)
    elif _port_in_use(host, port):
        raise MicrotuneError(f"port {port} on {host} is already in use; choose another --port or omit it.")
    artifacts = project / ARTIFACTS_NAME
    artifacts.mkdir(parents=True, exist_ok=True)
    log_path = record_path.parent / LOG_NAME
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port),
        "--backend-store-uri", backend, "--artifacts-destination", str(artifacts),
        "--serve-artifacts", "--workers", "1",
    ]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=project, start_new_session=True)
    uri = f"http://{host}:{port}"
    server = LocalServer(uri=uri, pid=process.pid, port=port, backend_store_uri=backend,
                         log_path=log_path, record_path=record_path, started=True, _process=process)
    deadline = time.monotonic() + timeout_s
    while not health_ok(uri, timeout_s=1.0):
        code = process.poll()
        if code is not None:
            raise MicrotuneError(f"mlflow server exited with status {code} before it was ready; see {log_path}.")
        if time.monotonic() > deadline:
            server.stop()
            raise MicrotuneError(f"mlflow server did not answer {uri}/health within {timeout_s:.0f} s; see {log_path}.")
        time.sleep(0.25)
    record = {"uri": uri, "pid": process.pid, "port": port, "host": host, "backend_store_uri": backend,
              "artifacts_destination": str(artifacts), "log": str(log_path), "started_at": time.time()}
    atomic_write_json(record_path, record, indent=2)
    return server


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    if status.exists():  # a zombie (exited, not yet reaped) is not a server
        with contextlib.suppress(OSError):
            return "\nState:\tZ" not in status.read_text()
    return True


def _cmdline_mentions(pid: int, text: str) -> bool:
    """True when /proc says PID's command line contains ``text`` (True where /proc is absent)."""
    path = Path(f"/proc/{pid}/cmdline")
    if not path.exists():
        return True
    try:
        return text in path.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate_group(pid: int, process: subprocess.Popen | None, timeout_s: float) -> None:
    """SIGTERM ``pid`` then its group (``pid`` leads it: start_new_session); SIGKILL on timeout."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None:
            process.poll()
        leader_gone = not _pid_alive(pid)
        if leader_gone and not _group_alive(pid):
            return
        if leader_gone:  # the leader left an orphaned worker in its group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)

"""A throwaway multi-node Ray cluster on one machine (for tests, benchmarks and rehearsals).

Each node is a ``ray start`` with its own ports; the cluster has its own temp dir and its own
token (``RAY_AUTH_MODE=token``), so it never touches another Ray on the machine. :meth:`stop` ends
exactly the processes whose command line names the cluster's temp dir, and nothing else.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


WORKER_PORTS = 40  # worker processes per node: ports min-worker-port .. + 40


def free_ports(n: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1, none in ``exclude`` (ports already handed out:
    the OS may offer a port again once its probing socket is closed)."""
    ports: list[int] = []
    socks = []
    try:
        while len(ports) < n:
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in exclude and port not in ports:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def _node_ports(taken: set[int]) -> tuple[list[str], int]:
    """Flags giving one node its own ports (added to ``taken``) and its node-manager port."""
    p = free_ports(7, taken)
    taken.update(p)
    taken.update(range(p[2], p[2] + WORKER_PORTS + 1))
    return [f"--node-manager-port={p[0]}", f"--object-manager-port={p[1]}", f"--min-worker-port={p[2]}",
            f"--max-worker-port={p[2] + WORKER_PORTS}", f"--dashboard-agent-listen-port={p[3]}",
            f"--dashboard-agent-grpc-port={p[4]}", f"--runtime-env-agent-port={p[5]}",
            f"--metrics-export-port={p[6]}"], p[0]


class LocalCluster:
    """A head with ``head_cpus`` CPUs plus one worker node per entry of ``worker_cpus``."""

    def __init__(self, *, head_cpus: int = 1, worker_cpus: tuple[int, ...] = (1,), dashboard: bool = True) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="mt-ray-", dir="/tmp")  # short: Ray's socket paths are long
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                    "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
        self.env.pop("RAY_ADDRESS", None)
        taken: set[int] = set()
        gcs_port, dash_port, client_port = free_ports(3)
        taken.update((gcs_port, dash_port, client_port))
        self.gcs = f"127.0.0.1:{gcs_port}"
        self.dashboard = f"http://127.0.0.1:{dash_port}"
        head_ports, _ = _node_ports(taken)
        self._run("start", "--head", f"--port={gcs_port}", f"--temp-dir={self.temp_dir}",
                  f"--num-cpus={head_cpus}", f"--include-dashboard={str(dashboard).lower()}",
                  "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}",
                  f"--ray-client-server-port={client_port}", *head_ports)
        self.worker_node_manager_ports = []
        for cpus in worker_cpus:
            ports, node_manager = _node_ports(taken)
            self._run("start", f"--address={self.gcs}", f"--num-cpus={cpus}", *ports)
            self.worker_node_manager_ports.append(node_manager)

    def _run(self, *args: str) -> None:
        try:
            subprocess.run([RAY, *args, "--node-ip-address=127.0.0.1", "--disable-usage-stats"], env=self.env,
                           check=True, capture_output=True, text=True, timeout=180)
        except subprocess.CalledProcessError as exc:
            self.stop()
            raise RuntimeError(f"ray {' '.join(args[:2])} failed: {exc.stderr[-2000:]}") from None

    def client_env(self) -> dict[str, str]:
        """Environment for a driver of this cluster (token auth)."""
        return {k: v for k, v in self.env.items() if k.startswith("RAY_")}

    def processes(self, needle: str = "") -> list[int]:
        """PIDs of processes whose command line names this cluster's temp dir (and ``needle``)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if self.temp_dir in cmdline and needle in cmdline:
                pids.append(int(entry.name))
        return pids

    def kill_worker(self, index: int = 0) -> int:
        """SIGKILL a worker node's raylet (the node dies); returns how many processes were killed."""
        pids = self.processes(f"--node_manager_port={self.worker_node_manager_ports[index]}")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        """End every process of this cluster (TERM, then KILL) and remove its temp dir."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

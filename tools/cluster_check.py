"""`make cluster-check`: cluster-onprem.yaml through Ray's real cluster launcher, on this machine.

Two "machines" on one host: each node is an sshd in its own PID and mount namespace (its own
process table, so the `ray stop` that the launcher runs on a node reaches that node only; its own
home bind-mounted on /root and its own /tmp/ray), listening on port 22 of its own loopback address:
the head on 127.0.0.3, one worker on 127.0.0.2. A key made for the check, root login by key only.
Then, as a user would (README, "Scaling out"):

    ray up -y <copy of cluster-onprem.yaml with these addresses, the key and free ports>
    ray list nodes                        (head and worker alive, with their addresses)
    ray exec ... microtune data synth ... (a small dataset on the shared directory)
    ray job submit ... microtune sweep launch ...   (two trials, one CPU per node)
    the study's runs read back from the head's MLflow server; the node of each trial (Tune's node_ip)
    ray exec ... kill the MLflow server; ray down -y

and checks that nothing it started is left running. Everything is stopped by PID: the sshd of a
node is the first process of the node's namespace, and the kernel ends the namespace with it.

What differs from real machines, on purpose:
- The install step of setup_commands (pip install of requirements/lock.txt and microtune) is
  replaced by an import check: each node's ~/microtune-venv is a link to this clone's .venv
  (reinstalling torch per node would take many minutes and GBs; the lock is checked by `make venv`).
- Both nodes share this host's network: the copy gives each node its own Ray ports (Ray's own
  defaults would clash), each node 1 CPU (so the two trials must use both nodes), and MLflow a free
  port instead of 5000.
- The "shared filesystem" (dataset, study storage) is a directory both namespaces see, as NFS would be.

Needs root on Debian/Ubuntu (apt-get, unshare, sshd); installs openssh-server and rsync when missing
and says so. Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")
# Not 127.0.0.1 for the head: `ray start --node-ip-address=127.0.0.1` announces this host's routable
# address instead (ray._private.services.resolve_ip_for_localhost), which then differs from head_ip
# and the autoscaler drops the head from its view (`ray status` counts one node).
NODES = {"head": "127.0.0.3", "worker": "127.0.0.2"}
STUDY = "cluster_check"
WORKER_PORTS = 40
LOG_PATH = REPO / "runs" / "cluster-check.log"


class CheckFailed(Exception):
    pass


# -- output --------------------------------------------------------------------------------------

_log_file = None
_t0 = time.monotonic()


def say(line: str = "") -> None:
    text = f"[{time.monotonic() - _t0:6.1f}s] {line}" if line else ""
    print(text, flush=True)
    if _log_file is not None:
        _log_file.write(text + "\n")
        _log_file.flush()


def run(cmd: list[str], *, env: dict[str, str], timeout: float, cwd: Path = REPO, check: bool = True,
        quiet: bool = False) -> str:
    """Run ``cmd``, echo its output (prefixed) into the log, return it; raise on failure/timeout."""
    say("$ " + " ".join(shlex.quote(c) for c in cmd))
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
    lines: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line)
            if not quiet:
                say("  | " + line.rstrip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this call started
        proc.wait()
        reader.join(5)
        raise CheckFailed(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} did not finish within {timeout:.0f} s") from None
    reader.join(10)
    out = "".join(lines)
    if check and proc.returncode != 0:
        if quiet:
            for line in lines[-40:]:
                say("  | " + line.rstrip())
        raise CheckFailed(f"'{' '.join(cmd[:3])} ...' exited with status {proc.returncode}")
    return out


# -- set-up -------------------------------------------------------------------------------------------

def install_packages() -> None:
    """openssh-server (sshd) and rsync (Ray's file mounts) from Debian, without starting a system sshd."""
    missing = [pkg for pkg, tool in (("openssh-server", "/usr/sbin/sshd"), ("rsync", "rsync"))
               if shutil.which(tool) is None]
    if not missing:
        say("openssh-server and rsync are installed")
        return
    if shutil.which("apt-get") is None:
        raise CheckFailed(f"{' and '.join(missing)} missing and no apt-get here: install them, then rerun")
    say(f"installing Debian packages {' '.join(missing)} with apt-get (no service is started)")
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:  # Debian's switch that keeps the package's own sshd (on 0.0.0.0:22) from starting
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], env=env, timeout=300, quiet=True)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env, timeout=600, quiet=True)
    finally:
        if own_policy:
            policy.unlink()


def free_ports(n: int, taken: set[int]) -> list[int]:
    from tools.localcluster import free_ports as probe

    ports = probe(n, taken)
    taken.update(ports)
    return ports


def node_port_flags(taken: set[int]) -> list[str]:
    """Flags giving one Ray node its own ports (both nodes share this host's network)."""
    p = free_ports(7, taken)
    taken.update(range(p[2], p[2] + WORKER_PORTS + 1))
    return [f"--node-manager-port={p[0]}", f"--object-manager-port={p[1]}", f"--min-worker-port={p[2]}",
            f"--max-worker-port={p[2] + WORKER_PORTS}", f"--dashboard-agent-listen-port={p[3]}",
            f"--dashboard-agent-grpc-port={p[4]}", f"--runtime-env-agent-port={p[5]}",
            f"--metrics-export-port={p[6]}"]


def replace_once(text: str, old: str, new: str, where: str) -> str:
    if text.count(old) != 1:
        raise CheckFailed(f"cluster-onprem.yaml: expected '{old}' once in {where}; update tools/cluster_check.py")
    return text.replace(old, new)


def make_config(base: Path, key: Path, ports: dict) -> Path:
    """A copy of cluster-onprem.yaml for the two loopback nodes (see the module docstring)."""
    config = yaml.safe_load((REPO / "cluster-onprem.yaml").read_text())
    config["cluster_name"] = f"microtune-check-{secrets.token_hex(3)}"
    config["provider"]["head_ip"] = NODES["head"]
    config["provider"]["worker_ips"] = [NODES["worker"]]
    config["auth"] = {"ssh_user": "root", "ssh_private_key": str(key)}
    installs = [c for c in config["setup_commands"] if "pip install" in c]
    if len(installs) != 1:
        raise CheckFailed("cluster-onprem.yaml: expected one setup command with 'pip install'; update tools/cluster_check.py")
    config["setup_commands"] = [
        "~/microtune-venv/bin/python -I -c 'import microtune.cli, ray, mlflow; print(\"microtune at\", "
        "microtune.__file__, \"ray\", ray.__version__, \"mlflow\", mlflow.__version__)'" if c in installs else c
        for c in config["setup_commands"]]
    say("setup_commands: the pip install of requirements/lock.txt is replaced by an import check "
        "(each node's ~/microtune-venv links to this clone's .venv)")
    head = config["head_start_ray_commands"]
    start = [i for i, c in enumerate(head) if "ray start --head" in c]
    mlflow = [i for i, c in enumerate(head) if "mlflow server" in c]
    if len(start) != 1 or len(mlflow) != 1:
        raise CheckFailed("cluster-onprem.yaml: expected one 'ray start --head' and one 'mlflow server' command")
    cmd = replace_once(head[start[0]], "--port=6379", f"--port={ports['gcs']}", "the head's ray start")
    cmd = replace_once(cmd, "--object-manager-port=8076", "", "the head's ray start")
    head[start[0]] = (cmd + f" --dashboard-port={ports['dashboard']} --ray-client-server-port={ports['client']}"
                      f" --num-cpus=1 " + " ".join(ports["head"]))
    head[mlflow[0]] = replace_once(head[mlflow[0]], "--port 5000", f"--port {ports['mlflow']}", "the MLflow command")
    workers = config["worker_start_ray_commands"]
    wstart = [i for i, c in enumerate(workers) if "ray start" in c]
    if len(wstart) != 1:
        raise CheckFailed("cluster-onprem.yaml: expected one 'ray start' in worker_start_ray_commands")
    cmd = replace_once(workers[wstart[0]], "$RAY_HEAD_IP:6379", f"$RAY_HEAD_IP:{ports['gcs']}", "the worker's ray start")
    cmd = replace_once(cmd, "--object-manager-port=8076", "", "the worker's ray start")
    workers[wstart[0]] = cmd + " --num-cpus=1 " + " ".join(ports["worker"])
    say(f"ports: GCS {ports['gcs']}, dashboard {ports['dashboard']}, MLflow {ports['mlflow']}; each node its own "
        "node-manager/object-manager/worker/agent ports and 1 CPU")
    path = base / "client" / "cluster-onprem-check.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, width=1000))
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))
    return path


SSHD_CONFIG = """\
# sshd of the cluster check's {node} node: its own address, port 22 (Ray's launcher has no port setting)
ListenAddress {ip}
Port 22
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
AllowUsers root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
AllowAgentForwarding no
PermitTTY yes
MaxStartups 30:30:100
LogLevel VERBOSE
"""


class Node:
    """One "machine": an sshd as the first process of a new PID + mount namespace."""

    def __init__(self, name: str, ip: str, base: Path, pubkey: str) -> None:
        self.name, self.ip = name, ip
        self.dir = base / "nodes" / name
        self.home = self.dir / "home"
        self.ray_tmp = self.dir / "ray"
        self.sshd_dir = self.dir / "sshd"
        for d in (self.home / ".ssh", self.ray_tmp, self.sshd_dir):
            d.mkdir(parents=True)
        self.home.chmod(0o700)
        (self.home / ".ssh").chmod(0o700)
        (self.home / ".ssh" / "authorized_keys").write_text(pubkey)
        (self.home / ".ssh" / "authorized_keys").chmod(0o600)
        skel = Path("/etc/skel/.bashrc")
        (self.home / ".bashrc").write_text(skel.read_text() if skel.is_file() else "")  # a fresh account's
        (self.home / "microtune-venv").symlink_to(VENV_BIN.parent)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.sshd_dir / "ssh_host_ed25519_key")],
                       check=True)
        (self.sshd_dir / "sshd_config").write_text(SSHD_CONFIG.format(node=name, ip=ip, dir=self.sshd_dir))
        self.unshare: subprocess.Popen | None = None
        self.sshd_pid: int | None = None

    def start(self) -> None:
        # what the node needs from the real /root (this clone's interpreter, e.g. ~/.pyenv) stays visible
        keep = sorted({Path("/root") / p.relative_to("/root").parts[0]
                       for p in (Path(os.path.realpath(sys.executable)), REPO) if p.is_relative_to("/root")})
        binds = "".join(f"mkdir -p {self.home / k.name} && mount --bind {k} {self.home / k.name} && " for k in keep)
        inner = (f"{binds}mount --rbind {self.home} /root && mount --bind {self.ray_tmp} /tmp/ray && "
                 f"exec /usr/sbin/sshd -D -f {self.sshd_dir / 'sshd_config'} -E {self.sshd_dir / 'sshd.log'}")
        self.unshare = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--propagation", "private",
                                         "sh", "-c", inner], start_new_session=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = _children(self.unshare.pid)
            if children and self._listening():
                self.sshd_pid = children[0]
                say(f"{self.name} node: sshd PID {self.sshd_pid} on {self.ip}:22, own PID and mount namespace, "
                    f"home {self.home}")
                return
            if self.unshare.poll() is not None:
                break
            time.sleep(0.2)
        log = (self.sshd_dir / "sshd.log").read_text() if (self.sshd_dir / "sshd.log").exists() else ""
        raise CheckFailed(f"the {self.name} node's sshd did not start on {self.ip}:22: {log[-800:]}")

    def _listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex((self.ip, 22)) == 0

    def processes(self) -> list[tuple[int, str]]:
        """(host PID, command line) of every process in this node's namespace but its sshd."""
        if self.sshd_pid is None:
            return []
        try:
            ns = os.readlink(f"/proc/{self.sshd_pid}/ns/pid")
        except OSError:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.sshd_pid:
                continue
            try:
                if os.readlink(entry / "ns" / "pid") != ns:
                    continue
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if cmd and not cmd.startswith("sshd:"):  # the sshd's own per-connection processes
                found.append((int(entry.name), cmd))
        return found

    def stop(self) -> None:
        """SIGTERM the node's sshd (the namespace's first process: the kernel then ends the rest)."""
        if self.unshare is None:
            return
        if self.sshd_pid is not None:
            try:
                os.kill(self.sshd_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.unshare.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.unshare.kill()
            self.unshare.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# -- the check ---------------------------------------------------------------------------------------

def spec_text(shared: Path) -> str:
    """A tiny CPU study (tests/sweep/conftest.py write_spec): demo cfg, 32x32, two trials of 0.2 kimg."""
    return yaml.safe_dump({
        "name": STUDY,
        "dataset": str(shared / "ds"),
        "train": {"cfg": "demo", "kimg": 0.2, "tick_kimg": 0.05, "device": "cpu", "num_threads": 1},
        "search": {"method": "grid", "seeds": [0], "params": {"augpipe": ["none", "bg"]}},
        "metrics": {"protocols": ["fid32_full", "pr32_full"], "detector": "random-seed:0", "eval_every_kimg": 0.1},
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 2,
    })


def show_worker_bringup(head: Node) -> None:
    """What the head's autoscaler logged about the worker: monitor.log (logging, written as it goes)
    and monitor.out (the SSH updater's output; block-buffered, so it may miss its last part)."""
    worker = NODES["worker"]
    for logs in sorted(head.ray_tmp.glob("session_2*/logs")):
        say("how the head's autoscaler brought up the worker (its logs on the head):")
        seen: set[str] = set()
        for name in ("monitor.log", "monitor.out"):
            path = logs / name
            if not path.is_file():
                continue
            for line in path.read_text(errors="replace").splitlines():
                line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
                body = line.split(" -- ", 1)[-1]
                wanted = (f"updater thread for node {worker}" in body or body.startswith(f"{worker}: ")
                          or (f"NodeUpdater: {worker}" in body and "Running" not in body) or "Local node IP" in body)
                if wanted and body not in seen:
                    seen.add(body)
                    say(f"  | {name}: {line[:200]}")


def config_workers(config: Path) -> list[str]:
    return yaml.safe_load(config.read_text())["provider"]["worker_ips"]


def wait_nodes(env: dict[str, str], dashboard: str, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        out = run([RAY, "list", "nodes", "--address", dashboard, "--format", "json"], env=env, timeout=120,
                  check=False, quiet=True)
        try:
            nodes = json.loads(out[out.index("["):])
        except ValueError:
            nodes = []
        alive = [n for n in nodes if n.get("state") == "ALIVE"]
        if len(alive) >= 2 or time.monotonic() > deadline:
            return alive
        say(f"  {len(alive)} node(s) alive; waiting for the worker (the head's autoscaler starts it over SSH)")
        time.sleep(10)


def main() -> int:
    global _log_file
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        print("cluster-check needs root on Linux (apt-get, unshare, an sshd on port 22 of two loopback addresses).",
              file=sys.stderr)
        return 1
    LOG_PATH.parent.mkdir(parents=True, exist_ok=True)
    _log_file = open(LOG_PATH, "w")
    say(f"cluster check of {REPO / 'cluster-onprem.yaml'} (log: {LOG_PATH})")
    for ip in NODES.values():
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((ip, 22)) == 0:
                say(f"FAIL: something already listens on {ip}:22; the check's sshd needs that port (Ray's "
                    "launcher cannot use another)")
                return 1
    try:
        install_packages()
    except CheckFailed as exc:
        say(f"FAIL: {exc}")
        return 1
    base = Path(tempfile.mkdtemp(prefix="mt-ray-up-", dir="/tmp"))
    base.chmod(0o755)
    client_home, client_tmp, shared = base / "client" / "home", base / "client" / "tmp", base / "shared"
    for d in (client_home, client_tmp, shared / "study"):
        d.mkdir(parents=True)
    key = base / "client" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "microtune-cluster-check", "-f", str(key)],
                   check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(client_home), TMPDIR=str(client_tmp), PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
               RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    run_dir = Path("/run/sshd")
    made_run_dir = not run_dir.exists()
    if made_run_dir:
        run_dir.mkdir(mode=0o755)  # sshd's privilege-separation directory
    # where the launcher keeps its SSH connection masters (ray.autoscaler._private.command_runner)
    control = Path("/tmp") / f"ray_ssh_{hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]}"
    made_control = not control.exists()
    nodes: list[Node] = []
    config = None
    config_down = False
    ok = False
    failures: list[str] = []
    try:
        nodes = [Node(name, ip, base, key.with_suffix(".pub").read_text()) for name, ip in NODES.items()]
        run([RAY, "get-auth-token", "--generate"], env=env, timeout=60, quiet=True)  # the user's step: ~/.ray/auth_token
        env["RAY_AUTH_MODE"] = "token"
        for node in nodes:
            node.start()
        taken: set[int] = set()
        gcs, dash, client, mlport = free_ports(4, taken)
        ports = {"gcs": gcs, "dashboard": dash, "client": client, "mlflow": mlport,
                 "head": node_port_flags(taken), "worker": node_port_flags(taken)}
        config = make_config(base, key, ports)
        say(f"cluster file for this check: {config} (passes Ray's schema check)")

        say("== ray up ==")
        t = time.monotonic()
        run([RAY, "up", "-y", "--no-config-cache", "--disable-usage-stats", "--log-style", "record", str(config)],
            env=env, timeout=600)
        say(f"ray up returned after {time.monotonic() - t:.0f} s")
        dashboard = f"http://127.0.0.1:{dash}"
        alive = wait_nodes(env, dashboard, timeout=180)
        for n in alive:
            say(f"  node {n.get('node_ip')} {'head' if n.get('is_head_node') else 'worker'} {n.get('state')} "
                f"CPU={n.get('resources_total', {}).get('CPU')}")
        node_ips = dict(NODES)
        found = {"head" if n.get("is_head_node") else "worker": n.get("node_ip") for n in alive}
        if len(alive) != 2 or found != node_ips:
            raise CheckFailed(f"expected the head ({node_ips['head']}) and the worker ({NODES['worker']}) alive, "
                              f"got {[n.get('node_ip') for n in alive]}")
        status = run([RAY, "exec", str(config), "ray status"], env=env, timeout=120)
        if " 2 local.cluster.node" not in status:
            raise CheckFailed("`ray status` on the head does not count 2 active nodes")

        say("== a study through ray exec and ray job submit ==")
        run([RAY, "exec", str(config), f"microtune data synth {shared / 'ds'} --count 32 --resolution 32 --specimens 4"],
            env=env, timeout=300)
        (shared / "study" / f"{STUDY}.yaml").write_text(spec_text(shared))
        tracking = f"http://{NODES['head']}:{mlport}"
        entry = (f"cd {shared / 'study'} && microtune sweep launch {STUDY}.yaml --tracking-uri {tracking} "
                 f"--storage {shared / 'runs'} --force")
        t = time.monotonic()
        out = run([RAY, "job", "submit", "--address", dashboard, "--", "bash", "-c", entry], env=env, timeout=900)
        say(f"the study's job took {time.monotonic() - t:.0f} s")
        if "2/2 trials finished" not in out:
            failures.append("the job's output lacks '2/2 trials finished'")

        say("== results from the head's MLflow server ==")
        from microtune.tracking import mlflow_io, schema

        runs = mlflow_io.load_runs(tracking, STUDY, launch="latest")
        node_of = {}
        for result in (shared / "runs" / STUDY).glob("*/result.json"):
            lines = result.read_text().splitlines()
            if lines:
                last = json.loads(lines[-1])
                node_of[last["trial_id"]] = last.get("node_ip")
        for _, row in runs.iterrows():
            fid = mlflow_io.load_histories(tracking, STUDY, [schema.FID], run_ids=[row["run_id"]])
            trial = row.get(f"tags.{schema.TRIAL_ID}")
            say(f"  run {row['run_id'][:8]} trial {trial} augpipe={row.get('params.augpipe')} {row['status']} "
                f"fid steps {sorted(fid['step'].tolist())} node {node_of.get(trial)}")
        if len(runs) != 2 or set(runs["status"]) != {"FINISHED"}:
            failures.append(f"expected 2 FINISHED trial runs in MLflow, got {list(runs['status'])}")
        trial_nodes = {node_of.get(t) for t in runs.get(f"tags.{schema.TRIAL_ID}", [])}
        if trial_nodes != set(node_ips.values()):
            failures.append(f"expected the trials on both nodes {sorted(node_ips.values())}, got {sorted(map(str, trial_nodes))}")
        else:
            say(f"the trials ran on both nodes: {sorted(trial_nodes)}")

        say("== ray down ==")
        run([RAY, "exec", str(config), "kill -- -$(cat ~/mlflow/server.pid)"], env=env, timeout=120)
        run([RAY, "down", "-y", str(config)], env=env, timeout=300)
        config_down = True
        # `ray down` runs `ray stop` on the head only: with the local provider it never reaches the
        # workers (their raylets end once the head is gone, Ray's log monitor stays). Stop them as
        # README says: ssh to each worker and run `ray stop` there.
        for ip in config_workers(config):
            run(["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "IdentitiesOnly=yes", f"root@{ip}", "~/microtune-venv/bin/ray stop"], env=env, timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(n.processes() for n in nodes):
            time.sleep(2)
        leftovers = [(n.name, pid, cmd) for n in nodes for pid, cmd in n.processes()]
        if leftovers:
            failures.append(f"{len(leftovers)} process(es) still ran 60 s after ray down and the workers' ray stop")
            for name, pid, cmd in leftovers:
                say(f"  left on {name}: {pid} {cmd[:150]}")
        else:
            say("after ray down nothing runs on either node but its sshd")
        ok = not failures
        return 0 if ok else 1
    except CheckFailed as exc:
        failures.append(str(exc))
        return 1
    finally:
        if config is not None and not config_down:
            try:  # the check failed midway: take the cluster down as a user would
                run([RAY, "down", "-y", str(config)], env=env, timeout=300, check=False)
            except CheckFailed as exc:
                say(f"ray down: {exc}")
        for node in nodes:
            node.stop()  # the kernel ends whatever still ran in the node's namespace
        if nodes:
            show_worker_bringup(nodes[0])
        _stop_ssh_masters(key)
        if made_run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
        if made_control:
            shutil.rmtree(control, ignore_errors=True)
        left = _processes_naming(str(base))
        if left:
            failures.append(f"processes naming {base} still run: {left}")
        for failure in failures:
            say(f"FAIL: {failure}")
        if ok and not left:
            shutil.rmtree(base, ignore_errors=True)
            say(f"PASS: cluster-onprem.yaml through ray up / job submit / ray down in {time.monotonic() - _t0:.0f} s")
        else:
            say(f"cluster check FAILED after {time.monotonic() - _t0:.0f} s; its files are kept in {base}")
        _log_file.close()


def _processes_naming(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _stop_ssh_masters(key: Path) -> None:
    """The launcher's SSH connection masters (ControlPersist 10 s) to the nodes, found by the check's key."""
    for pid in _processes_naming(str(key)):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while _processes_naming(str(key)) and time.monotonic() < deadline:
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())

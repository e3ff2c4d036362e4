"""cluster.yaml validates offline against Ray's own autoscaler schema and keeps its promises."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO


def load():
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_cluster_yaml_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(load())
    validate_config(config)  # raises on a schema violation


def test_cluster_yaml_promises():
    config = load()
    assert config["docker"]["image"] == "rayproject/ray:2.60.0-py311-gpu"
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert config["provider"]["type"] == "aws"
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}
    text = (REPO / "cluster.yaml").read_text()
    assert "0.0.0.0" not in text and "--dashboard-host=127.0.0.1" in text
    ranges = [r["CidrIp"] for p in config["provider"]["security_group"]["IpPermissions"] for r in p["IpRanges"]]
    assert "0.0.0.0/0" not in ranges
    head = " ".join(config["head_start_ray_commands"])
    assert "mlflow server" in head and "--serve-artifacts" in head
    assert any("pip install" in c and "microtune" in c for c in config["setup_commands"])


def test_schema_check_catches_a_broken_config():
    import pytest
    from jsonschema import ValidationError
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load()
    config["available_node_types"]["gpu_worker"]["max_workers"] = "eight"
    with pytest.raises(ValidationError):
        validate_config(prepare_config(config))


# -- both cluster files: cluster.yaml (AWS) and cluster-onprem.yaml (machines reached by SSH) ---------

CLUSTER_FILES = ("cluster.yaml", "cluster-onprem.yaml")


def load_file(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def validated(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


def test_onprem_yaml_passes_rays_schema():
    validated(load_file("cluster-onprem.yaml"))


@pytest.mark.parametrize("name", CLUSTER_FILES)
@pytest.mark.parametrize("section, key, value", [(None, "setup_comands", ["true"]),
                                                 ("auth", "ssh_private_keys", "~/.ssh/id_ed25519")])
def test_a_misspelt_key_is_refused(name, section, key, value):
    from jsonschema import ValidationError

    config = load_file(name)
    (config if section is None else config[section])[key] = value
    with pytest.raises(ValidationError, match=key):
        validated(config)


def test_onprem_yaml_promises():
    config = load_file("cluster-onprem.yaml")
    text = (REPO / "cluster-onprem.yaml").read_text()
    assert config["provider"]["type"] == "local"
    assert {"head_ip", "worker_ips"} <= set(config["provider"])
    assert "available_node_types" not in config  # the local provider refuses it (prepare_local)
    assert "0.0.0.0" not in text and "--dashboard-host=127.0.0.1" in text
    head = " ".join(config["head_start_ray_commands"])
    assert "mlflow server" in head and "--serve-artifacts" in head and "sqlite:///$HOME/mlflow/mlflow.db" in head
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in head
    # MLflow 3 refuses Host headers outside loopback/private ranges unless allowed (403 seen by make cluster-check)
    assert '--allowed-hosts "$0,$0:*,' in head and "--host $0" in head
    # token authentication for every node and every shell the launcher opens
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = next(c for c in commands if "ray start" in c)
        assert "RAY_AUTH_MODE=token" in start and "--node-ip-address=" in start
    assert "RAY_enable_autoscaler_v2=0" in head  # v2 never starts local-provider workers in Ray 2.60
    assert any("RAY_AUTH_MODE=token" in c and ".bashrc" in c for c in config["setup_commands"])
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_cluster_files_install_the_lock_and_mount_no_venv(name):
    config = load_file(name)
    setup = " ".join(config["setup_commands"])
    assert "requirements/lock.txt" in setup and "--no-deps -e" in setup
    # `ray up` reads every file under a mounted directory to hash it: never mount the checkout root
    # (its .venv holds gigabytes; rsync_exclude does not apply to the hash)
    sources = [str(s).rstrip("/") for s in config["file_mounts"].values()]
    assert "." not in sources and not any(".venv" in s for s in sources)
    assert {"./microtune", "./requirements", "./pyproject.toml", "./README.md"} <= set(sources)


def test_cluster_check_makes_a_valid_loopback_copy(tmp_path):
    """tools/cluster_check.py (make cluster-check) rewrites cluster-onprem.yaml for two loopback
    nodes; the copy must keep passing Ray's schema and find every command it rewrites."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cluster_check", REPO / "tools" / "cluster_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    (tmp_path / "client").mkdir()
    taken: set[int] = set()
    gcs, dash, client, mlport = check.free_ports(4, taken)
    ports = {"gcs": gcs, "dashboard": dash, "client": client, "mlflow": mlport,
             "head": check.node_port_flags(taken), "worker": check.node_port_flags(taken)}
    path = check.make_config(tmp_path, tmp_path / "key", ports)
    copy = yaml.safe_load(path.read_text())
    assert copy["provider"]["head_ip"] == check.NODES["head"] and copy["provider"]["worker_ips"] == [check.NODES["worker"]]
    head = " ".join(copy["head_start_ray_commands"])
    worker = " ".join(copy["worker_start_ray_commands"])
    assert f"--port={gcs}" in head and f"$RAY_HEAD_IP:{gcs}" in worker and f"--port {mlport}" in head
    assert "6379" not in head + worker and "8076" not in head + worker and "5000" not in head
    assert not any("pip install" in c for c in copy["setup_commands"])

"""cluster.yaml validates offline against Ray's own autoscaler schema and keeps its promises."""

from __future__ import annotations

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

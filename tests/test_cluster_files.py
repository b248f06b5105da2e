"""Offline checks of the deployment files in cluster/: no cloud, Kubernetes or Docker needed.

What runs for real is in cluster/README.md ("What was exercised here and what was not").
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
RAY_UP_CONFIGS = [CLUSTER / "aws.yaml", CLUSTER / "gcp.yaml"]
K8S = CLUSTER / "k8s"
ALL_YAML = sorted(CLUSTER.rglob("*.yaml"))
SCRIPTS = sorted((CLUSTER / "local").glob("*.sh"))


def _ray_pin() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    if sys.version_info < (3, 11):  # no tomllib before 3.11: find the pin in the text
        return re.search(r'"ray\[default\]==([^"]+)"', text).group(1)
    import tomllib

    deps = tomllib.loads(text)["project"]["dependencies"]
    (pin,) = [d for d in deps if re.match(r"ray(\[.*\])?==", d)]
    return pin.split("==", 1)[1]


RAY_VERSION = _ray_pin()


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _walk(node, key_path=()):
    """Yield (key_path, value) for every value in a parsed YAML tree."""
    yield key_path, node
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for k, v in items:
        yield from _walk(v, (*key_path, k))


def test_expected_files_exist():
    for rel in [
        "aws.yaml",
        "gcp.yaml",
        "Dockerfile",
        "README.md",
        "k8s/raycluster.yaml",
        "k8s/rayjob.yaml",
        "k8s/llm-secrets.example.yaml",
        "local/start.sh",
        "local/stop.sh",
    ]:
        assert (CLUSTER / rel).is_file(), rel


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(CLUSTER)))
def test_yaml_parses(path):
    assert isinstance(_load(path), dict)


@pytest.mark.parametrize("path", RAY_UP_CONFIGS, ids=lambda p: p.name)
def test_ray_up_config_passes_rays_schema(path):
    # prepare_config merges the provider defaults shipped in the wheel, as `ray up` does.
    validate_config(prepare_config(_load(path)))


def test_ray_up_schema_check_is_not_vacuous():
    config = _load(RAY_UP_CONFIGS[0])
    config["available_node_types"]["worker"]["min_workerz"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(copy.deepcopy(config)))


@pytest.mark.parametrize("path", RAY_UP_CONFIGS, ids=lambda p: p.name)
def test_ray_up_config_pins_ray_and_installs_rlm_ray(path):
    config = _load(path)
    setup = " ".join(config["setup_commands"])
    assert f'"ray[default]=={RAY_VERSION}"' in setup
    assert "/rlm-ray" in setup and "pip install" in setup
    assert config["head_node_type"] in config["available_node_types"]
    workers = [
        t for n, t in config["available_node_types"].items() if n != config["head_node_type"]
    ]
    assert workers and all("min_workers" in t and "max_workers" in t for t in workers)
    for cmd in config["head_start_ray_commands"][-1:] + config["worker_start_ray_commands"][-1:]:
        assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in cmd
        assert "llm.env" in cmd  # keys come from the node environment


def _ray_defaults(provider: str) -> dict:
    """The defaults `ray up` merges in for a provider (shipped in the Ray wheel)."""
    import ray.autoscaler

    return _load(Path(ray.autoscaler.__file__).parent / provider / "defaults.yaml")


def _node_images(config: dict) -> dict[str, str]:
    images = {}
    for name, node in config["available_node_types"].items():
        node_config = node["node_config"]
        if config["provider"]["type"] == "aws":
            images[name] = node_config.get("ImageId")
        else:
            (disk,) = [d for d in node_config["disks"] if d.get("boot")]
            images[name] = disk["initializeParams"]["sourceImage"]
    return images


@pytest.mark.parametrize("path", RAY_UP_CONFIGS, ids=lambda p: p.name)
def test_ray_up_config_states_its_image_and_python(path):
    """Which image, and which Python installs rlm-ray: Ray's default image and PATH line for
    the provider, a version check, and that Python's own pip."""
    config = _load(path)
    provider = config["provider"]["type"]
    defaults = _ray_defaults(provider)
    images = set(_node_images(config).values())
    if provider == "aws":
        from ray.autoscaler._private.aws.config import DEFAULT_AMI

        assert images == {DEFAULT_AMI[config["provider"]["region"]]}
    else:
        assert images == set(_node_images(defaults).values())
    path_line, check, install = config["setup_commands"]
    assert path_line == defaults["setup_commands"][0]  # Ray's own PATH line for that image
    assert check.startswith("python -c") and "(3, 10)" in check
    assert install.startswith("python -m pip install")
    assert all(c.startswith("python -m pip") for c in config["head_setup_commands"])


@pytest.mark.parametrize("path", RAY_UP_CONFIGS, ids=lambda p: p.name)
def test_head_and_workers_start_with_the_same_auth_mode(path):
    """A worker without RAY_AUTH_MODE=token cannot join a head that has token auth on."""
    config = _load(path)
    head = config["head_start_ray_commands"][-1]
    worker = config["worker_start_ray_commands"][-1]
    mode = 'export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"'
    for cmd in (head, worker):
        assert cmd.index("llm.env") < cmd.index(mode) < cmd.index("ray start")
    env_example = (CLUSTER / "llm.env.example").read_text()
    assert "# RAY_AUTH_MODE=token" in env_example and "# RAY_AUTH_TOKEN=" in env_example


def _pod_specs(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    return [g["template"]["spec"] for g in groups]


def _cluster_specs() -> list[tuple[str, dict]]:
    return [
        ("raycluster", _load(K8S / "raycluster.yaml")["spec"]),
        ("rayjob", _load(K8S / "rayjob.yaml")["spec"]["rayClusterSpec"]),
    ]


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_kuberay_manifest_header(name):
    doc = _load(K8S / name)
    assert doc["apiVersion"] == "ray.io/v1"
    assert doc["kind"] == {"raycluster.yaml": "RayCluster", "rayjob.yaml": "RayJob"}[name]
    assert doc["metadata"]["name"]


@pytest.mark.parametrize(
    "name,spec", _cluster_specs(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_kuberay_cluster_spec_has_required_fields(name, spec):
    assert spec["rayVersion"] == RAY_VERSION
    assert spec["authOptions"] == {"mode": "token"}
    assert spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    assert spec["workerGroupSpecs"]
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"]
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    if any(g["minReplicas"] < g["maxReplicas"] for g in spec["workerGroupSpecs"]):
        # min/max replicas only take effect with KubeRay's autoscaler sidecar
        assert spec["enableInTreeAutoscaling"] is True
        assert spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    for pod in _pod_specs(spec):
        container = pod["containers"][0]
        resources = container["resources"]
        assert resources["requests"] == resources["limits"]
        shm = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        assert shm and any(
            v["name"] == shm[0]["name"] and v["emptyDir"]["medium"] == "Memory"
            for v in pod["volumes"]
        )
        env = {e["name"]: e for e in container["env"]}
        assert env["LITELLM_LOCAL_MODEL_COST_MAP"]["value"] == "True"
        key_ref = env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]
        assert key_ref["name"] == "rlm-ray-llm-keys" and key_ref["key"] == "OPENAI_API_KEY"


def test_rayjob_runs_rlm_ray_and_cleans_up():
    spec = _load(K8S / "rayjob.yaml")["spec"]
    assert re.match(r"(rlm-ray|python -m rlm_ray) run ", spec["entrypoint"])
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["rayClusterSpec"] == _load(K8S / "raycluster.yaml")["spec"]


def test_secret_template_holds_placeholders_only():
    doc = _load(K8S / "llm-secrets.example.yaml")
    assert doc["kind"] == "Secret"
    assert set(doc["stringData"].values()) == {"replace-me"}


def test_images_and_pins_match_pyproject():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == [f"rayproject/ray:{RAY_VERSION}-py311"]
    assert f'"ray[default]=={RAY_VERSION}"' in dockerfile
    assert re.search(r"^ENV LITELLM_LOCAL_MODEL_COST_MAP=True$", dockerfile, re.M)
    images = [
        v for path in K8S.glob("*.yaml") for k, v in _walk(_load(path)) if k and k[-1] == "image"
    ]
    assert images and all(f"ray{RAY_VERSION}" in image.split(":")[-1] for image in images)
    every_text = [p.read_text() for p in [*ALL_YAML, CLUSTER / "Dockerfile"]]
    pins = [m for text in every_text for m in re.findall(r"ray\[default\]==([\w.]+)", text)]
    assert pins and set(pins) == {RAY_VERSION}


# Provider key shapes (OpenAI sk-..., Anthropic sk-ant-..., Google AIza..., AWS AKIA...).
KEY_VALUE = re.compile(r"sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}|AKIA[0-9A-Z]{16}")


@pytest.mark.parametrize(
    "path",
    [*ALL_YAML, CLUSTER / "Dockerfile", CLUSTER / "llm.env.example", *SCRIPTS],
    ids=lambda p: str(p.relative_to(CLUSTER)),
)
def test_no_secrets_and_no_keys_in_runtime_env(path):
    text = path.read_text()
    assert not KEY_VALUE.search(text)
    if path.suffix != ".yaml":
        return
    for key_path, value in _walk(_load(path)):
        if "env_vars" in key_path or "runtimeEnvYAML" in key_path:
            names = value if isinstance(value, dict) else {}
            assert not any(n.upper().endswith(("_KEY", "_TOKEN")) for n in names), key_path
            if isinstance(value, str):
                assert not re.search(r"_KEY|_TOKEN", value), key_path


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse(path):
    subprocess.run(["bash", "-n", str(path)], check=True)
    # They must never stop Ray processes they did not start (other sessions on the machine).
    code = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if re.search(r"\bray stop\b|\bpkill\b|\bkillall\b", line)]

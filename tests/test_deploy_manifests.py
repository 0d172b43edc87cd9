"""The deployment files, checked offline (no container daemon, no cluster here): deploy/Dockerfile linted by hadolint,
deploy/k8s validated against Kubernetes' schemas by kubernetes-validate (strict: unknown fields fail), and the files
checked against each other and the service (paths, ports, probes, user, grace period, config keys)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from guardsdk.cli.serve_settings import load_settings, read_config_file
from guardsdk.service.auth import is_loopback

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
#: deploy/measure_serve.py, bundled classifier, 2 cores (docs/deploy.md): the peak resident memory of one replica.
MEASURED_PEAK_RSS_MIB = 572


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def image_setting(name: str) -> str:
    """The last stage's value of one instruction (ENTRYPOINT, CMD, USER, ...)."""
    return [args for instruction, args in dockerfile_instructions() if instruction == name][-1]


def k8s(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text(encoding="utf-8")) if doc]


def test_hadolint_finds_nothing_in_the_dockerfile():
    result = subprocess.run([str(BIN / "hadolint"), "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_shell_form_entrypoint(tmp_path):
    """The lint is live: the same file with a shell-form ENTRYPOINT (a shell as PID 1 eats SIGTERM) fails."""
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    broken = dockerfile.replace('ENTRYPOINT ["guardsdk"]', "ENTRYPOINT guardsdk")
    (tmp_path / "Dockerfile").write_text(broken, encoding="utf-8")
    result = subprocess.run([str(BIN / "hadolint"), "--no-color", str(tmp_path / "Dockerfile")], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0 and "DL3025" in result.stdout


def test_the_image_runs_as_a_user_execs_guardsdk_checks_health_and_installs_with_the_shared_script():
    instructions = dockerfile_instructions()
    assert [i for i, _ in instructions].count("FROM") == 2  # build, runtime
    assert image_setting("USER").split(":")[0] not in ("0", "root")
    assert json.loads(image_setting("ENTRYPOINT")) == ["guardsdk"] and json.loads(image_setting("CMD")) == ["serve"]
    health = image_setting("HEALTHCHECK")
    assert "/healthz" in health and json.loads(health.split("CMD", 1)[1])[0] == "python"
    assert any(i == "RUN" and args.startswith("bash deploy/install.sh") for i, args in instructions)
    assert "GGML_NATIVE=OFF" in (DEPLOY / "install.sh").read_text(encoding="utf-8")
    env = image_setting("ENV")
    assert "GUARDSDK_CONFIG=/etc/guardsdk/serve.toml" in env and "GUARDSDK_MODELS_DIR=/models" in env
    container = read_config_file(DEPLOY / "container.toml")
    assert image_setting("EXPOSE") == str(container["port"]) and not is_loopback(container["host"])


def test_the_build_context_holds_what_the_image_copies_and_nothing_else():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    copies = [args.split()[:-1] for i, args in dockerfile_instructions() if i == "COPY" and "--from" not in args]
    assert "*" in ignore and {source for sources in copies for source in sources} == allowed


def test_kubernetes_validate_accepts_the_manifests_offline_and_strictly(tmp_path):
    files = sorted(str(p) for p in (DEPLOY / "k8s").glob("*.yaml"))
    assert len(files) >= 6  # no Secret: made with kubectl create secret (docs/deploy.md)
    result = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "--quiet", *files], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "deployment.yaml"  # the validation is live: a misspelt field fails
    broken.write_text((DEPLOY / "k8s" / "deployment.yaml").read_text().replace("replicas:", "replicaz:"))
    result = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(broken)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode != 0 and "replicaz" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    docs = [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in k8s(path.name)]
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in docs}


def test_the_manifests_fit_together_and_fit_the_service(manifests, tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("GUARDSDK_")]:
        monkeypatch.delenv(name)
    assert {"Deployment/guardsdk", "Service/guardsdk", "HorizontalPodAutoscaler/guardsdk",
            "ConfigMap/guardsdk-config", "PodDisruptionBudget/guardsdk", "Deployment/guard-model",
            "Service/guard-model"} <= set(manifests)  # fmt: skip
    deployment = manifests["Deployment/guardsdk"]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    labels = pod["metadata"]["labels"]
    for name in ("Service/guardsdk", "PodDisruptionBudget/guardsdk"):
        selector = manifests[name]["spec"]["selector"]
        assert selector.get("matchLabels", selector).items() <= labels.items(), name
    assert manifests["HorizontalPodAutoscaler/guardsdk"]["spec"]["scaleTargetRef"]["name"] == "guardsdk"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["spec"]["securityContext"]["runAsUser"] == int(image_setting("USER").split(":")[0])
    # the config file as the pod sees it: the ConfigMap's key at GUARDSDK_CONFIG, keys from the Secret's mount
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_path = Path(env["GUARDSDK_CONFIG"])
    assert str(config_path.parent) == mounts["config"]
    (tmp_path / "serve.toml").write_text(manifests["ConfigMap/guardsdk-config"]["data"][config_path.name])
    settings = load_settings({}, tmp_path / "serve.toml")[0]
    keys_file = Path(str(settings.api_keys_file))
    assert str(keys_file.parent) == mounts["secrets"]
    # no Secret ships (a key in the repository is everyone's key): docs/deploy.md makes it with kubectl create secret
    assert not [name for name in manifests if name.startswith("Secret/")]
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "secrets"]
    [item] = volume["secret"]["items"]
    assert item["path"] == keys_file.name
    created = f"kubectl create secret generic {volume['secret']['secretName']} --from-file={item['key']}="
    assert created in (DEPLOY.parent / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert settings.server == "http://guard-model:8000/v1" and not is_loopback(settings.host)
    assert container["ports"][0]["containerPort"] == settings.port
    # SIGTERM: preStop's sleep, then requests in flight finish (up to the request timeout + 5 s), within the grace
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 5 + settings.timeout + 5
    memory = container["resources"]["requests"]["memory"]
    assert memory.endswith("Mi") and int(memory[:-2]) >= MEASURED_PEAK_RSS_MIB


def test_the_compose_file_runs_vllm_as_the_guard_server_beside_the_image():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    model, gateway = compose["services"]["guard-model"], compose["services"]["guardsdk"]
    assert model["image"].startswith("vllm/vllm-openai:")
    assert model["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gateway["build"]["dockerfile"] == "deploy/Dockerfile"
    assert gateway["depends_on"]["guard-model"]["condition"] == "service_healthy"
    served = next(arg.split("=", 1)[1] for arg in model["command"] if arg.startswith("--served-model-name="))
    assert gateway["environment"]["GUARDSDK_SERVER"] == "http://guard-model:8000/v1"
    assert gateway["environment"]["GUARDSDK_SERVER_MODEL"] == served

"""The deployment files, checked offline by independent validators: Kubernetes manifests
(rendered by kubectl's kustomize, validated against Kubernetes' schemas), the Compose file
(against the Compose specification's schema), the Varnish VCL (compiled by varnishd), the
Dockerfile (hadolint); and their settings against the server's own parser."""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from imgproxy_py.settings import Settings
from tests.support import REPO, free_port, images_dir, missing_prerequisite, size_of

DEPLOY = REPO / "deploy"
K8S_VERSION = "1.37.0"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        missing_prerequisite(f"{name} is not installed (dev dependencies: pip install -e '.[dev]')")
    return found


def render(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [_tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_manifests_validate_against_the_kubernetes_schemas(overlay: str) -> None:
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_fails_validation() -> None:
    deployment = by_kind(render("base"), "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)


def test_the_deployment_matches_the_server_settings() -> None:
    docs = render("overlays/production")
    config = by_kind(docs, "ConfigMap")["data"]
    settings = Settings.from_env(config)  # every value parses as the server would read it
    pod = by_kind(docs, "Deployment")["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    # SIGTERM comes after the preStop sleep; the drain must then finish inside the grace period.
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + settings.server.graceful_stop_timeout
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    port = settings.server.port
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": port,
        "metrics": settings.observability.prometheus_bind[1] if settings.observability.prometheus_bind else None,
    }
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(container["ports"][1]["containerPort"])
    assert settings.cache.redis_url.startswith("redis+cluster://")
    assert spec["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    secret = by_kind(docs, "Secret")["stringData"]
    assert {"IMGPROXY_KEY", "IMGPROXY_SALT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret)
    # The NetworkPolicy and PDB select exactly the Deployment's pods.
    labels = pod["metadata"]["labels"]
    for kind in ("NetworkPolicy", "PodDisruptionBudget"):
        doc = by_kind(docs, kind)
        selector = doc["spec"]["podSelector" if kind == "NetworkPolicy" else "selector"]["matchLabels"]
        assert selector.items() <= labels.items()


def test_compose_file_validates_against_the_compose_spec(tmp_path: Path) -> None:
    checker = _tool("check-jsonschema")
    compose = DEPLOY / "compose.yaml"
    ok = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(compose)], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = yaml.safe_load(compose.read_text())
    assert {"varnish", "imgproxy", "redis", "minio", "prometheus", "grafana"} <= set(doc["services"])
    assert doc["services"]["imgproxy"]["deploy"]["replicas"] >= 2
    Settings.from_env({k: str(v) for k, v in doc["services"]["imgproxy"]["environment"].items()})
    broken = copy.deepcopy(doc)
    broken["services"]["imgproxy"]["restartt"] = "always"  # a typo the spec rejects
    bad_file = tmp_path / "compose.yaml"
    bad_file.write_text(yaml.safe_dump(broken))
    bad = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(bad_file)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0
    for path in (DEPLOY / "prometheus" / "prometheus.yml", *(DEPLOY / "grafana").rglob("*.yaml")):
        assert yaml.safe_load(path.read_text())
    dashboard = yaml.safe_load((DEPLOY / "grafana" / "dashboards" / "imgproxy-py.json").read_text())
    assert dashboard["panels"]


def test_varnish_configuration_compiles() -> None:
    varnishd = shutil.which("varnishd") or ("/usr/sbin/varnishd" if Path("/usr/sbin/varnishd").exists() else None)
    if varnishd is None:
        missing_prerequisite("varnishd is not installed (CI installs it: apt-get install varnish)")
    vcl = (DEPLOY / "varnish" / "default.vcl").read_text()
    with tempfile.TemporaryDirectory() as workdir:
        os.chmod(workdir, 0o755)  # varnishd reads the file as its own unprivileged user
        # The backend host must resolve when compiling: point it at loopback as the drill does.
        local = Path(workdir) / "default.vcl"
        local.write_text(vcl.replace('.host = "imgproxy";', '.host = "127.0.0.1";'))
        broken = Path(workdir) / "broken.vcl"
        broken.write_text(local.read_text().replace("sub vcl_deliver {", "sub vcl_deliver { set nothing = 1;"))
        for path in (local, broken):
            path.chmod(0o644)
        compiled = subprocess.run([varnishd, "-C", "-f", str(local)], capture_output=True, text=True, timeout=60)
        assert compiled.returncode == 0, compiled.stderr[-2000:]
        assert subprocess.run([varnishd, "-C", "-f", str(broken)], capture_output=True, timeout=60).returncode != 0


def test_dockerfile_passes_hadolint() -> None:
    lint = subprocess.run(
        [_tool("hadolint"), "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_dockerfile_install_steps_replay_in_a_clean_venv(tmp_path: Path) -> None:
    """No container engine runs here: replay the image's Python install in a fresh venv (no
    site packages of ours) on the same Python minor version, then serve a real image from it,
    so a dependency that needs a system package the Dockerfile lacks fails here."""
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM python:(\d+\.\d+)", dockerfile, re.M)
    assert base is not None, "the image is expected to build on an official python base"
    if base.group(1) != f"{sys.version_info.major}.{sys.version_info.minor}":
        pytest.skip(f"the image uses Python {base.group(1)}, this interpreter is another minor version")
    pip_steps = re.findall(r"pip install ([^&\n]+)", dockerfile)
    assert [step.strip() for step in pip_steps] == ["--no-cache-dir ."]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # The same install, from the same project files (the pip cache may serve the wheels).
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(REPO)], capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stderr[-3000:]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGPROXY_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(
        IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(images_dir()), IMGPROXY_BIND=f"127.0.0.1:{port}", IMGPROXY_MALLOC="glibc"
    )
    server = subprocess.Popen(
        [str(venv / "bin" / "imgproxy-py"), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,  # not the repo: nothing may be imported from the source tree
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        response = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/_/rs:fit:80:80/plain/local:///2569067123_aca715a2ee_o.jpg@webp",
                    timeout=10,
                )
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert response is not None and response.status_code == 200, "the replayed install did not serve"
        assert response.headers["content-type"] == "image/webp"
        assert max(size_of(response.content)) == 80
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)

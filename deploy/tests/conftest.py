"""Shared helpers of the deploy/ tests: render the chart with Helm's engine, find the binary."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from helm_python.chart import Chart

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "enclava"

# The two Secrets every install needs (the chart refuses to render without them).
REQUIRED = {"tls": {"existingSecret": "enclava-tls"}, "store": {"existingSecret": "enclava-store"}}


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def render(values: dict | None = None, *, required: bool = True) -> list[dict]:
    """Render the chart as `helm template vault deploy/helm/enclava -n prod` would; the
    Kubernetes objects, parsed."""
    vals = merge(REQUIRED, values or {}) if required else (values or {})
    with Chart.load(CHART) as chart:
        manifests = chart.render(vals, name="vault", namespace="prod")
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def by_kind(docs: list[dict]) -> dict[str, dict]:
    kinds = {}
    for d in docs:
        assert d["kind"] not in kinds, f"two objects of kind {d['kind']}"
        kinds[d["kind"]] = d
    return kinds


def container(docs: list[dict]) -> dict:
    [c] = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


@pytest.fixture(scope="session")
def enclava_bin() -> Path:
    """The real enclava binary (deploy/test.sh sets ENCLAVA_BIN); required under CI=true."""
    path = Path(os.environ.get("ENCLAVA_BIN", REPO / "target" / "debug" / "enclava"))
    if not os.access(path, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"enclava binary not found at {path}")
        pytest.skip(f"enclava binary not found at {path} (set ENCLAVA_BIN)")
    return path


@pytest.fixture(scope="session")
def server_help(enclava_bin: Path) -> str:
    return subprocess.run(
        [enclava_bin, "server", "--help"], check=True, capture_output=True, text=True
    ).stdout

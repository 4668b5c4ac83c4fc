"""The real server, started with exactly the settings the chart renders (environment, mounted
Secret and ConfigMap files, arguments), the volume paths mapped into a temporary directory: it
accepts them, serves the probe paths over HTTPS with the mounted certificate, and goes through
the documented initialize-and-unseal procedure until /readyz is 200.

What this cannot show: the image itself (no container runtime here), the kubelet, Services,
NetworkPolicy enforcement, scheduling."""

import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import by_kind, container, render

CONFIG_TOML = "max_connections = 512\nheader_read_timeout_secs = 15\n"


def make_tls(d: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1/localhost (what a kubernetes.io/tls
    Secret would hold)."""
    d.mkdir(parents=True)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=d)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=deploy test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=localhost")
    (d / "ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    run("openssl", "x509", "-req", "-in", "tls.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "tls.crt", "-extfile", "ext")
    return d / "ca.pem", d / "tls.crt", d / "tls.key"


def get(port: int, path: str, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_server_runs_with_the_rendered_settings_and_unseals(enclava_bin, tmp_path):
    pg = os.environ.get("ENCLAVA_TEST_POSTGRES_URL")
    if not pg:
        if os.environ.get("CI") == "true":
            pytest.fail("ENCLAVA_TEST_POSTGRES_URL is not set (scripts/test.sh runs this under scripts/postgres-test.sh)")
        print("NOTICE: ENCLAVA_TEST_POSTGRES_URL not set: the server runs on SQLite instead of the chart's PostgreSQL")
    docs = render({"server": {"config": CONFIG_TOML}})
    kinds = by_kind(docs)
    c = container(docs)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    ca, crt, key = make_tls(tmp_path / "pki")

    # Each volume of the pod becomes a directory, filled as the kubelet would fill it.
    root = tmp_path / "pod"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mapping = {}
    for m in c["volumeMounts"]:
        d = root / m["name"]
        d.mkdir(parents=True)
        d.chmod(0o700)
        v = volumes[m["name"]]
        if "secret" in v:
            assert v["secret"]["secretName"] == "enclava-tls", v
            for item in v["secret"]["items"]:
                src = {"tls.crt": crt, "tls.key": key}[item["key"]]
                (d / item["path"]).write_bytes(src.read_bytes())
        elif "configMap" in v:
            for name, text in kinds["ConfigMap"]["data"].items():
                (d / name).write_text(text)
        else:
            assert "emptyDir" in v, v
        mapping[m["mountPath"]] = str(d)

    def remap(value: str) -> str:
        for mount, d in mapping.items():
            if value == mount or value.startswith(mount + "/"):
                return d + value[len(mount):]
        return value

    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVA_")}
    env["RUST_LOG"] = "warn"
    for e in c["env"]:
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            assert (e["name"], ref["name"]) == ("ENCLAVA_STORE", "enclava-store"), e
            if pg:
                env[e["name"]] = pg
            continue
        env[e["name"]] = remap(e["value"])
    # The only change: loopback and a free port instead of 0.0.0.0:8443 inside the pod.
    assert env["ENCLAVA_ADDR"] == "0.0.0.0:8443"
    env["ENCLAVA_ADDR"] = "127.0.0.1:0"
    assert Path(env["ENCLAVA_CONFIG"]).read_text() == CONFIG_TOML

    proc = subprocess.Popen(
        [str(enclava_bin), *c["args"]], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        if not line.startswith("ready "):
            proc.kill()
            pytest.fail(f"server did not start: stdout {line!r}, stderr {proc.stderr.read()}")
        port = int(re.search(r":(\d+)$", line.strip()).group(1))

        # The probes: liveness 200 while sealed, readiness 503 until unsealed.
        assert get(port, "/healthz", ca) == 200
        assert get(port, "/readyz", ca) == 503

        # docs/deploy.md, "Initialize and unseal": init with this replica's init token, then
        # unseal with threshold shares.
        data_dir = Path(env["ENCLAVA_DATA_DIR"])
        cli = [str(enclava_bin), "operator"]
        common = ["--url", f"https://localhost:{port}", "--ca-cert", str(ca), "-o", "json"]
        out = subprocess.run(
            [*cli, "init", "--shares", "3", "--threshold", "2",
             "--init-token-file", str(data_dir / "init.token"), *common],
            check=True, capture_output=True, text=True, env=env,
        ).stdout
        shares = json.loads(out)["shares"]
        assert len(shares) == 3
        for share in shares[:2]:
            subprocess.run([*cli, "unseal", share, *common], check=True, capture_output=True, env=env)
        deadline = time.monotonic() + 10
        while get(port, "/readyz", ca) != 200:
            assert time.monotonic() < deadline, "/readyz did not turn 200 after the unseal"
            time.sleep(0.1)
        assert get(port, "/healthz", ca) == 200
        # The vault went where the chart sends it: the database, not SQLite in the data dir.
        assert (data_dir / "vault.db").exists() is (not pg)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

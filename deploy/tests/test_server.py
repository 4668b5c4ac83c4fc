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


class Replica:
    """One pod of the rendered Deployment as a real process: each volume a directory filled as
    the kubelet would fill it, the container's environment with the mount paths mapped to those
    directories, the Secret's database URL from the test cluster."""

    def __init__(self, enclava_bin: Path, docs: list[dict], root: Path, tls: tuple[Path, Path, Path], pg: str | None):
        kinds = by_kind(docs)
        c = container(docs)
        pod = kinds["Deployment"]["spec"]["template"]["spec"]
        _, crt, key = tls
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
        self.env = env
        self.data_dir = Path(env["ENCLAVA_DATA_DIR"])
        self.proc = subprocess.Popen(
            [str(enclava_bin), *c["args"]], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            self.proc.kill()
            pytest.fail(f"server did not start: stdout {line!r}, stderr {self.proc.stderr.read()}")
        self.port = int(re.search(r":(\d+)$", line.strip()).group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def operator(enclava_bin: Path, replica: Replica, ca: Path, *args: str) -> str:
    """`enclava operator ARGS` against one replica, as docs/deploy.md does through port-forward."""
    common = ["--url", f"https://localhost:{replica.port}", "--ca-cert", str(ca), "-o", "json"]
    return subprocess.run(
        [str(enclava_bin), "operator", *args, *common], check=True, capture_output=True, text=True, env=replica.env
    ).stdout


def wait_ready(replica: Replica, ca: Path):
    deadline = time.monotonic() + 10
    while get(replica.port, "/readyz", ca) != 200:
        assert time.monotonic() < deadline, "/readyz did not turn 200 after the unseal"
        time.sleep(0.1)


def database_url(name: str) -> str | None:
    """A new, empty database on the test cluster (each test initializes its own vault), or None
    (SQLite) outside CI when no cluster is given."""
    pg = os.environ.get("ENCLAVA_TEST_POSTGRES_URL")
    if not pg:
        if os.environ.get("CI") == "true":
            pytest.fail("ENCLAVA_TEST_POSTGRES_URL is not set (scripts/test.sh runs this under scripts/postgres-test.sh)")
        print("NOTICE: ENCLAVA_TEST_POSTGRES_URL not set: the server runs on SQLite instead of the chart's PostgreSQL")
        return None
    db = f"deploy_{name}_{os.getpid()}_{time.time_ns()}"
    # scripts/postgres-test.sh's role owns the cluster; psql comes with Debian's postgresql.
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", pg, "-c", f"CREATE DATABASE {db}"],
                   check=True, capture_output=True)
    url, sep, query = pg.partition("?")
    return url.rsplit("/", 1)[0] + "/" + db + sep + query


def test_server_runs_with_the_rendered_settings_and_unseals(enclava_bin, tmp_path):
    pg = database_url("single")
    docs = render({"server": {"config": CONFIG_TOML}})
    tls = make_tls(tmp_path / "pki")
    ca = tls[0]
    replica = Replica(enclava_bin, docs, tmp_path / "pod", tls, pg)
    try:
        assert Path(replica.env["ENCLAVA_CONFIG"]).read_text() == CONFIG_TOML
        # The probes: liveness 200 while sealed, readiness 503 until unsealed.
        assert get(replica.port, "/healthz", ca) == 200
        assert get(replica.port, "/readyz", ca) == 503

        # docs/deploy.md, "Initialize and unseal": init with this replica's init token, then
        # unseal with threshold shares.
        out = operator(enclava_bin, replica, ca, "init", "--shares", "3", "--threshold", "2",
                       "--init-token-file", str(replica.data_dir / "init.token"))
        shares = json.loads(out)["shares"]
        assert len(shares) == 3
        for share in shares[:2]:
            operator(enclava_bin, replica, ca, "unseal", share)
        wait_ready(replica, ca)
        assert get(replica.port, "/healthz", ca) == 200
        # The vault went where the chart sends it: the database, not SQLite in the data dir.
        assert (replica.data_dir / "vault.db").exists() is (not pg)
    finally:
        replica.stop()


def test_a_replica_started_on_an_initialized_database_is_unsealed_with_the_same_shares(enclava_bin, tmp_path):
    """docs/deploy.md: init once, then every replica (a new pod, a restarted one) starts sealed,
    writes no init token, and is unsealed with the same shares."""
    pg = database_url("replicas")
    if not pg:
        pytest.skip("needs the shared PostgreSQL database (ENCLAVA_TEST_POSTGRES_URL)")
    docs = render()
    tls = make_tls(tmp_path / "pki")
    ca = tls[0]
    first = Replica(enclava_bin, docs, tmp_path / "pod-0", tls, pg)
    second = None
    try:
        out = operator(enclava_bin, first, ca, "init", "--shares", "3", "--threshold", "2",
                       "--init-token-file", str(first.data_dir / "init.token"))
        shares = json.loads(out)["shares"]
        for share in shares[:2]:
            operator(enclava_bin, first, ca, "unseal", share)
        wait_ready(first, ca)

        second = Replica(enclava_bin, docs, tmp_path / "pod-1", tls, pg)
        assert not (second.data_dir / "init.token").exists()
        assert get(second.port, "/readyz", ca) == 503
        status = json.loads(operator(enclava_bin, second, ca, "status"))
        assert status.get("initialized") is True and status.get("sealed") is True, status
        # Another pair of custodians, the same shares.
        for share in shares[1:]:
            operator(enclava_bin, second, ca, "unseal", share)
        wait_ready(second, ca)
        assert get(first.port, "/readyz", ca) == 200
    finally:
        first.stop()
        if second is not None:
            second.stop()

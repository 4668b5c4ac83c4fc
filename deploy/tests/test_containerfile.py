"""deploy/Containerfile: what docs/deploy.md says about the image, checked on the file (no
container runtime is available here to build it), and the binary's command line it relies on
checked on the real binary."""

import re
import subprocess
import tomllib

import pytest
import yaml

from conftest import CHART, REPO, by_kind, container, render

CONTAINERFILE = REPO / "deploy" / "Containerfile"
DOCS = REPO / "docs" / "deploy.md"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[dict]:
    result = []
    for word, args in instructions():
        if word == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args, re.I)
            assert m, f"every stage is named: FROM {args}"
            result.append({"image": m.group(1), "name": m.group(2), "steps": []})
        else:
            result[-1]["steps"].append((word, args))
    return result


def test_two_stages_rust_builder_and_slim_runtime():
    builder, runtime = stages()
    rust_version = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["rust-version"]
    assert re.fullmatch(rf"docker\.io/library/rust:{re.escape(rust_version)}-slim-bookworm", builder["image"])
    runs = " ".join(a for w, a in builder["steps"] if w == "RUN")
    assert "cargo build --release --locked -p enclava" in runs
    # Only the workspace manifest, the lock file and the crates go into the build.
    copies = [a for w, a in builder["steps"] if w == "COPY"]
    assert copies == ["Cargo.toml Cargo.lock ./", "crates ./crates"]
    assert runtime["image"] == "docker.io/library/debian:bookworm-slim"
    assert [a for w, a in runtime["steps"] if w == "COPY"] == [
        f"--from={builder['name']} /out/enclava /usr/local/bin/enclava"
    ]


def runtime_steps() -> dict[str, list[str]]:
    steps: dict[str, list[str]] = {}
    for word, args in stages()[-1]["steps"]:
        steps.setdefault(word, []).append(args)
    return steps


def test_runtime_user_entrypoint_port_and_volume_match_the_chart_and_the_docs():
    steps = runtime_steps()
    [user] = steps["USER"]
    uid, gid = (int(x) for x in user.split(":"))
    assert uid != 0 and gid != 0
    # The chart runs the pod as that user.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert (values["podSecurityContext"]["runAsUser"], values["podSecurityContext"]["runAsGroup"]) == (uid, gid)
    assert steps["ENTRYPOINT"] == ['["/usr/local/bin/enclava"]']
    assert steps["CMD"] == ['["server"]']
    [expose] = steps["EXPOSE"]
    assert int(expose) == values["server"]["port"]
    env = dict(re.findall(r"(ENCLAVA_[A-Z_]+)=(\S+)", " ".join(steps["ENV"])))
    assert env["ENCLAVA_ADDR"] == f"0.0.0.0:{expose}"
    [volume] = steps["VOLUME"]
    assert volume == f'["{env["ENCLAVA_DATA_DIR"]}"]'
    # The data directory is created for that user (a fresh volume inherits the owner).
    assert f"install -d -o {uid} -g {gid} -m 0700 {env['ENCLAVA_DATA_DIR']}" in " ".join(steps["RUN"])
    # The chart mounts its data volume at the image's data directory.
    c = container(render())
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["data"] == env["ENCLAVA_DATA_DIR"]
    # docs/deploy.md states the same.
    docs = DOCS.read_text()
    for fact in (f"`USER {uid}:{gid}`", "`ENTRYPOINT [\"/usr/local/bin/enclava\"]`", "`CMD [\"server\"]`",
                 f"`EXPOSE {expose}`", f"`{env['ENCLAVA_DATA_DIR']}`", "debian:bookworm-slim",
                 "cargo build --release --locked -p enclava"):
        assert fact in docs, f"docs/deploy.md does not say {fact}"


def test_no_secrets_baked_into_the_image():
    for word, args in instructions():
        if word in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"PASSWORD|TOKEN|SECRET|STORE|_KEY|postgres://", args, re.I), (word, args)
        if word in ("COPY", "ADD"):
            assert not re.search(r"\.pem|\.key|token|vectors|\.env", args, re.I), (word, args)


def test_the_binary_accepts_the_image_command_and_environment(enclava_bin, server_help):
    # The image runs `enclava server` with these variables: each is a setting the server reads.
    env = dict(re.findall(r"(ENCLAVA_[A-Z_]+)=(\S+)", " ".join(runtime_steps()["ENV"])))
    assert env
    for var in env:
        assert f"env: {var}" in server_help, f"`enclava server --help` does not name {var}"
    assert "json" in server_help  # ENCLAVA_LOG_FORMAT=json is a value it takes
    # And the subcommand the CMD names exists (exit 0 on --help).
    subprocess.run([enclava_bin, "server", "--help"], check=True, capture_output=True)


def test_the_chart_appversion_is_the_crate_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    crate = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    assert chart["appVersion"] == crate
    assert by_kind(render())["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == f"enclava:{crate}"


@pytest.mark.parametrize("var", ["ENCLAVA_STORE", "ENCLAVA_TLS_CERT", "ENCLAVA_TLS_KEY", "ENCLAVA_PUBLIC_URL"])
def test_settings_the_chart_relies_on_exist(server_help, var):
    assert var in server_help

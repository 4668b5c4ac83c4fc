"""Fixtures for the Azure Key Vault SDK compatibility suite.

The suite builds nothing: it runs the `enclava` binary named by ENCLAVA_BIN (default
target/debug/enclava in the repository) as `enclava server --dev --data-dir <tmp> --addr 127.0.0.1:0`,
waits for its `ready https://...` line, and hands the tests the URL, the CA certificate the server
wrote and the bootstrap administrator token. The official SDKs then talk to it over HTTPS exactly as
they would to Azure (with `verify_challenge_resource=False`, since the server is not *.vault.azure.net).
"""

from __future__ import annotations

import os
import queue
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = float(os.environ.get("ENCLAVA_READY_TIMEOUT", "60"))
# A test attestation issuer the server trusts for secure key release (ENCLAVA_TRUSTED_ISSUERS):
# test_release.py signs attestation tokens with its ES256 key (Server.attestation_key_pem).
TEST_ATTESTATION_ISSUER = "https://attest.pytest.enclava.invalid"


def _test_attestation_issuer(directory: Path) -> tuple[Path, Path]:
    """Generate the test issuer's P-256 key; write its PEM and its JWKS. Returns (key pem, jwks)."""
    import base64
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    nums = key.public_key().public_numbers()
    b64 = lambda i: base64.urlsafe_b64encode(i.to_bytes(32, "big")).rstrip(b"=").decode()  # noqa: E731
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "kid": "pytest-att-1", "use": "sig", "alg": "ES256",
                      "x": b64(nums.x), "y": b64(nums.y)}]}
    key_pem = directory / "attestation-key.pem"
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    jwks_path = directory / "attestation-jwks.json"
    jwks_path.write_text(json.dumps(jwks))
    return key_pem, jwks_path


class StaticTokenCredential:
    """A credential that always returns one bearer token (the SDKs accept any object with get_token)."""

    def __init__(self, token: str, lifetime_s: int = 3600) -> None:
        self._token = token
        self._lifetime_s = lifetime_s
        self.calls: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.calls.append(scopes)
        return AccessToken(self._token, int(time.time()) + self._lifetime_s)


@dataclass(frozen=True)
class Server:
    url: str
    ca: str
    admin_token: str = field(repr=False)  # never printed in failure reports
    data_dir: Path
    attestation_key_pem: Path | None = None

    def credential(self) -> StaticTokenCredential:
        return StaticTokenCredential(self.admin_token)

    def client_kwargs(self) -> dict:
        return {"verify_challenge_resource": False, "connection_verify": self.ca}


def remote_client(key_id: str, server: "Server", credential):
    """A CryptographyClient that sends every operation to the server.

    The SDK normally performs encrypt/wrap/verify locally with the public key it downloads; marking it
    initialized without key material (its state when the caller lacks keys/get permission) makes it
    use the service for all operations, so the server's side of each operation is exercised too.
    """
    from azure.keyvault.keys.crypto import CryptographyClient

    client = CryptographyClient(key_id, credential, **server.client_kwargs())
    client._initialized = True  # noqa: SLF001 - see docstring
    return client


def _binary() -> Path:
    raw = os.environ.get("ENCLAVA_BIN", "target/debug/enclava")
    path = Path(raw)
    if not path.is_absolute():
        path = REPO / path
    if not path.is_file():
        pytest.fail(
            f"enclava binary not found at {path} (set ENCLAVA_BIN or run `cargo build -p enclava` first)",
            pytrace=False,
        )
    return path


def _pump(stream, lines: "queue.Queue[str | None]") -> None:
    """Forward every stdout line to the queue (and keep draining so the server never blocks on a full pipe)."""
    try:
        for line in iter(stream.readline, ""):
            lines.put(line)
    finally:
        lines.put(None)


def _stderr_tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<could not read server stderr: {e}>"
    return text[-limit:] if text else "<empty>"


@pytest.fixture(scope="session")
def server():
    binary = _binary()
    tmp = tempfile.TemporaryDirectory(prefix="enclava-pytest-")
    data_dir = Path(tmp.name) / "data"
    data_dir.mkdir()
    stderr_path = Path(tmp.name) / "server.stderr"
    stderr_file = open(stderr_path, "w")
    att_key_pem, att_jwks = _test_attestation_issuer(Path(tmp.name))
    env = dict(os.environ, ENCLAVA_TRUSTED_ISSUERS=f"{TEST_ATTESTATION_ISSUER}={att_jwks}")
    # Certificate lifetime actions (test_certificates.py auto-renew) run on the maintenance tick.
    env.setdefault("ENCLAVA_MAINTENANCE_INTERVAL_SECS", "2")
    proc = subprocess.Popen(
        [str(binary), "server", "--dev", "--data-dir", str(data_dir), "--addr", "127.0.0.1:0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
    )
    lines: "queue.Queue[str | None]" = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()

    url = None
    seen: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no `ready https://...` line within {READY_TIMEOUT_S:.0f}s")
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"server exited (code {proc.wait(timeout=5)}) before printing `ready https://...`")
            seen.append(line.rstrip("\n"))
            parts = line.split()
            if len(parts) == 2 and parts[0] == "ready" and parts[1].startswith("https://"):
                url = parts[1].rstrip("/")
        ca = data_dir / "ca.pem"
        token_file = data_dir / "admin.token"
        for f in (ca, token_file):
            if not f.is_file():
                raise RuntimeError(f"server printed ready but did not write {f}")
        token = token_file.read_text().strip()
        if not token:
            raise RuntimeError(f"{token_file} is empty")
    except Exception as e:  # noqa: BLE001 - turned into a test failure with the server's own words
        proc.kill()
        proc.wait(timeout=10)
        stderr_file.close()
        msg = (
            f"enclava server failed to start: {e}\n"
            f"command: {binary} server --dev --data-dir {data_dir} --addr 127.0.0.1:0\n"
            f"stdout: {seen!r}\nstderr:\n{_stderr_tail(stderr_path)}"
        )
        tmp.cleanup()
        pytest.fail(msg, pytrace=False)

    yield Server(url=url, ca=str(ca), admin_token=token, data_dir=data_dir, attestation_key_pem=att_key_pem)

    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    stderr_file.close()
    tmp.cleanup()


@pytest.fixture(scope="session")
def credential(server: Server) -> StaticTokenCredential:
    return server.credential()


@pytest.fixture(scope="session")
def key_client(server: Server, credential):
    from azure.keyvault.keys import KeyClient

    with KeyClient(server.url, credential, **server.client_kwargs()) as client:
        yield client


@pytest.fixture(scope="session")
def secret_client(server: Server, credential):
    from azure.keyvault.secrets import SecretClient

    with SecretClient(server.url, credential, **server.client_kwargs()) as client:
        yield client


@pytest.fixture
def unique_name(request) -> str:
    """A key/secret name unique to this test run (Key Vault names: letters, digits and dashes)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}"

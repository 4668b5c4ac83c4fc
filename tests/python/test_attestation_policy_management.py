"""MAA policy management with the real Azure Attestation SDK (`azure-security-attestation` 1.0.0)
against an isolated-mode `enclava server --dev` (trusted policy signers configured): signed
`set_policy` / `reset_policy` as the SDK sends them (header `{"alg": "RSA256", "jwk": {"x5c": ...}}`),
the policy token hash checked the way the SDK samples check it, the unsigned reset refused, and the
policy management certificates (`get/add/remove_policy_management_certificate`).

The server is started with `attestation.alg = RS256` (the SDK validates RS256 tokens only) and the
SDK authenticates with a static bearer credential (the admin token)."""

from __future__ import annotations

import datetime
import hashlib
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from conftest import READY_TIMEOUT_S, StaticTokenCredential, _binary, _pump, _stderr_tail

from azure.security.attestation import (
    AttestationAdministrationClient,
    AttestationPolicyToken,
    AttestationType,
    CertificateModification,
    PolicyModification,
)

POLICY = """version= 1.0;
authorizationrules
{
    [ type=="x-ms-sgx-is-debuggable", value==false ] => permit();
};
issuancerules {
    c:[type=="x-ms-sgx-mrsigner"] => issue(type="custom-name", value=c.value);
};"""


def _signer(name: str) -> tuple[str, str, bytes]:
    """An RSA key and its self-signed certificate: (key PEM, certificate PEM, certificate DER)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), cert.public_bytes(serialization.Encoding.DER)


FIRST = _signer("enclava test policy signer 1")
SECOND = _signer("enclava test policy signer 2")


@pytest.fixture(scope="module")
def isolated():
    """A dev server in isolated mode trusting FIRST; yields (url, ca path, admin token)."""
    tmp = tempfile.TemporaryDirectory(prefix="enclava-pytest-isolated-")
    root = Path(tmp.name)
    data_dir = root / "data"
    data_dir.mkdir()
    signers = root / "signers.pem"
    signers.write_text(FIRST[1])
    stderr_path = root / "server.stderr"
    stderr_file = open(stderr_path, "w")
    env = dict(
        os.environ,
        ENCLAVA_ATTESTATION_POLICY_SIGNERS=str(signers),
        ENCLAVA_ATTESTATION_ALG="RS256",
    )
    proc = subprocess.Popen(
        [str(_binary()), "server", "--dev", "--data-dir", str(data_dir), "--addr", "127.0.0.1:0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
    )
    lines: "queue.Queue[str | None]" = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    url = None
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while url is None:
            if time.monotonic() > deadline:
                raise TimeoutError("no `ready https://...` line")
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"server exited (code {proc.wait(timeout=5)})")
            parts = line.split()
            if len(parts) == 2 and parts[0] == "ready" and parts[1].startswith("https://"):
                url = parts[1].rstrip("/")
        token = (data_dir / "admin.token").read_text().strip()
    except Exception as e:  # noqa: BLE001 - reported with the server's own words
        proc.kill()
        proc.wait(timeout=10)
        stderr_file.close()
        tmp.cleanup()
        pytest.fail(f"isolated server failed to start: {e}\n{_stderr_tail(stderr_path)}", pytrace=False)
    yield url, str(data_dir / "ca.pem"), token
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    stderr_file.close()
    tmp.cleanup()


@pytest.fixture(scope="module")
def admin(isolated) -> AttestationAdministrationClient:
    url, ca, token = isolated
    return AttestationAdministrationClient(url, StaticTokenCredential(token), connection_verify=ca)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def test_signed_set_policy_and_token_hash(admin):
    key, cert, _ = FIRST
    result, _token = admin.set_policy(
        AttestationType.SGX_ENCLAVE, POLICY, signing_key=key, signing_certificate=cert
    )
    assert result.policy_resolution == PolicyModification.UPDATED
    # How the SDK sample validates the hash: SHA-256 over the policy JWS it sent.
    expected = AttestationPolicyToken(POLICY, signing_key=key, signing_certificate=cert)
    assert result.policy_token_hash == _sha256(expected.to_jwt_string())
    assert result.policy_signer.certificates[0].strip() == cert.strip()
    policy, _ = admin.get_policy(AttestationType.SGX_ENCLAVE)
    assert policy == POLICY


def test_isolated_mode_refuses_unsigned_and_foreign_requests(admin):
    # Unsigned set and (the attack) unsigned reset.
    with pytest.raises(HttpResponseError) as e:
        admin.set_policy(AttestationType.SGX_ENCLAVE, POLICY)
    assert e.value.status_code == 400 and "policy_signature_required" in str(e.value)
    with pytest.raises(HttpResponseError) as e:
        admin.reset_policy(AttestationType.SGX_ENCLAVE)
    assert e.value.status_code == 400 and "policy_signature_required" in str(e.value)
    # A key that is not a policy signer.
    key, cert, _ = SECOND
    with pytest.raises(HttpResponseError) as e:
        admin.reset_policy(AttestationType.SGX_ENCLAVE, signing_key=key, signing_certificate=cert)
    assert e.value.status_code == 403 and "untrusted_policy_signer" in str(e.value)
    policy, _ = admin.get_policy(AttestationType.SGX_ENCLAVE)
    assert policy == POLICY, "nothing was reset"


def test_signed_reset_policy(admin):
    key, cert, _ = FIRST
    result, _ = admin.reset_policy(AttestationType.SGX_ENCLAVE, signing_key=key, signing_certificate=cert)
    assert result.policy_resolution == PolicyModification.REMOVED
    assert result.policy_signer.certificates[0].strip() == cert.strip()
    policy, _ = admin.get_policy(AttestationType.SGX_ENCLAVE)
    assert policy != POLICY


def test_policy_management_certificates(admin):
    first_key, first_cert, first_der = FIRST
    second_key, second_cert, second_der = SECOND
    certs, _ = admin.get_policy_management_certificates()
    assert [c[0].strip() for c in certs] == [first_cert.strip()]

    result, _ = admin.add_policy_management_certificate(
        second_cert, signing_key=first_key, signing_certificate=first_cert
    )
    assert result.certificate_resolution == CertificateModification.IS_PRESENT
    assert result.certificate_thumbprint == hashlib.sha1(second_der).hexdigest().upper()
    certs, _ = admin.get_policy_management_certificates()
    assert sorted(c[0].strip() for c in certs) == sorted([first_cert.strip(), second_cert.strip()])

    # The added signer can set policies.
    result, _ = admin.set_policy(
        AttestationType.SGX_ENCLAVE, POLICY, signing_key=second_key, signing_certificate=second_cert
    )
    assert result.policy_resolution == PolicyModification.UPDATED

    # The second removes the first; the first can sign nothing any more.
    result, _ = admin.remove_policy_management_certificate(
        first_cert, signing_key=second_key, signing_certificate=second_cert
    )
    assert result.certificate_resolution == CertificateModification.IS_ABSENT
    assert result.certificate_thumbprint == hashlib.sha1(first_der).hexdigest().upper()
    certs, _ = admin.get_policy_management_certificates()
    assert [c[0].strip() for c in certs] == [second_cert.strip()]
    with pytest.raises(HttpResponseError) as e:
        admin.set_policy(AttestationType.SGX_ENCLAVE, POLICY, signing_key=first_key, signing_certificate=first_cert)
    assert e.value.status_code == 403

    # The last signer stays.
    with pytest.raises(HttpResponseError) as e:
        admin.remove_policy_management_certificate(
            second_cert, signing_key=second_key, signing_certificate=second_cert
        )
    assert e.value.status_code == 409 and "last_policy_signer" in str(e.value)

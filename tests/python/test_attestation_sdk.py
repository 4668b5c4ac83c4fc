"""Microsoft's Azure Attestation SDK (`azure-security-attestation` 1.0.0), unchanged and with its
default options (its token validation included), against a real `enclava server --dev` in AAD
(non-isolated) mode (issue 10, part A).

Authentication is a real `azure.identity.ClientSecretCredential` against the server's own token
endpoint: the SDK asks it for scope `https://attest.azure.net/.default`, so the attestation
resource, its audience check and the roles (policy management needs `policies/manage`) are all
exercised. SGX evidence is real: the quotes under `../shared/vectors/sgx` (never copied into the
repository); the server is given the vector's DCAP collateral through
`ENCLAVA_ATTESTATION_COLLATERAL_DIR`.

Why the occlum quote attests and the dcap-qvl one is the failure case: the SDK checks `exp`/`nbf`
against the real clock, so tokens must be issued now; the dcap-qvl quote's collateral expired in
July 2025 (a server verifying at the real time must refuse it), while the occlum quote has no
collateral at all, so it is attested (signature and PCK chain checked to Intel's root) under a
custom policy that does not require a TCB evaluation, set through the SDK first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ClientSecretCredential
from azure.security.attestation import (
    AttestationAdministrationClient,
    AttestationClient,
    AttestationType,
    PolicyModification,
)

from conftest import READY_TIMEOUT_S, REPO, _binary, _pump, _stderr_tail

VECTORS = Path(os.environ.get("ENCLAVA_VECTORS", REPO.parent / "shared" / "vectors"))
OCCLUM_QUOTE = VECTORS / "sgx" / "trustee" / "occlum_quote.dat"
OCCLUM_MRENCLAVE = "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68"
PHALA_QUOTE = VECTORS / "sgx" / "phala-dcap-qvl" / "sgx_quote"
PHALA_COLLATERAL = VECTORS / "sgx" / "phala-dcap-qvl" / "sgx_quote_collateral.json"
PHALA_FMSPC = "00a067110000"
ATTEST_SCOPE = "https://attest.azure.net/.default"
TENANT = "enclava-test-tenant"
# A policy that permits any evidence that verified (MAA's default policy text).
PERMIT_ALL = "version=1.0; authorizationrules { => permit(); }; issuancerules {};"
# A policy that issues one custom claim, to tell the draft's token from the stored policy's.
DRAFT = (
    "version=1.0; authorizationrules { => permit(); }; "
    'issuancerules { => issue(type="draft-marker", value="from-the-draft"); };'
)

pytestmark = pytest.mark.skipif(
    not (OCCLUM_QUOTE.is_file() and PHALA_QUOTE.is_file() and PHALA_COLLATERAL.is_file()),
    reason=f"SGX test vectors not found under {VECTORS} (set ENCLAVA_VECTORS)",
)


class AttServer:
    def __init__(self, url: str, ca: str, admin_token: str) -> None:
        self.url = url
        self.ca = ca
        self._admin_token = admin_token

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        r = requests.request(
            method,
            f"{self.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self._admin_token}"},
            verify=self.ca,
            timeout=30,
        )
        assert r.status_code in (200, 201, 204), f"{method} {path} -> {r.status_code}: {r.text}"
        return r.json() if r.content else {}

    def principal(self, role: str | None) -> dict:
        """A service principal with `role` at vault scope: {client_id, client_secret}."""
        sp = self.admin("POST", "/enclava/principals",
                        {"kind": "service_principal", "display_name": f"sdk-{uuid.uuid4().hex[:8]}"})
        if role:
            self.admin("POST", "/enclava/role-assignments", {"principal": sp["client_id"], "role": role, "scope": "/"})
        return sp

    def credential(self, sp: dict) -> ClientSecretCredential:
        return ClientSecretCredential(
            TENANT,
            sp["client_id"],
            sp["client_secret"],
            authority=self.url,
            disable_instance_discovery=True,
            connection_verify=self.ca,
        )


@pytest.fixture(scope="module")
def att_server():
    """`enclava server --dev` with the dcap-qvl vector's collateral in its collateral directory."""
    binary = _binary()
    tmp = tempfile.TemporaryDirectory(prefix="enclava-pytest-att-")
    root = Path(tmp.name)
    data_dir = root / "data"
    data_dir.mkdir()
    (root / "collateral" / "sgx").mkdir(parents=True)
    (root / "collateral" / "sgx" / f"{PHALA_FMSPC}.json").write_bytes(PHALA_COLLATERAL.read_bytes())
    stderr_path = root / "server.stderr"
    stderr_file = open(stderr_path, "w")
    env = dict(os.environ, ENCLAVA_ATTESTATION_COLLATERAL_DIR=str(root / "collateral"))
    proc = subprocess.Popen(
        [str(binary), "server", "--dev", "--data-dir", str(data_dir), "--addr", "127.0.0.1:0"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file, text=True,
    )
    lines: "queue.Queue[str | None]" = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    url = None
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
                raise RuntimeError(f"server exited (code {proc.wait(timeout=5)}) before it was ready")
            parts = line.split()
            if len(parts) == 2 and parts[0] == "ready" and parts[1].startswith("https://"):
                url = parts[1].rstrip("/")
        token = (data_dir / "admin.token").read_text().strip()
    except Exception as e:  # noqa: BLE001 - a test failure with the server's own words
        proc.kill()
        proc.wait(timeout=10)
        stderr_file.close()
        msg = f"enclava server failed to start: {e}\nstderr:\n{_stderr_tail(stderr_path)}"
        tmp.cleanup()
        pytest.fail(msg, pytrace=False)
    yield AttServer(url, str(data_dir / "ca.pem"), token)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    stderr_file.close()
    tmp.cleanup()


@pytest.fixture(scope="module")
def contributor(att_server):
    """A policy manager: the AttestationContributor role, authenticated with client credentials."""
    return att_server.credential(att_server.principal("AttestationContributor"))


@pytest.fixture(scope="module")
def client(att_server, contributor):
    with AttestationClient(att_server.url, contributor, connection_verify=att_server.ca) as c:
        yield c


@pytest.fixture(scope="module")
def admin_client(att_server, contributor):
    with AttestationAdministrationClient(att_server.url, contributor, connection_verify=att_server.ca) as c:
        yield c


def _payload(jwt: str) -> dict:
    seg = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def _oe_report(quote: bytes) -> bytes:
    """An Open Enclave remote report: oe_report_header {version 1, type 2 (remote), size} || quote."""
    return struct.pack("<IIQ", 1, 2, len(quote)) + quote


def test_credential_gets_attestation_scope(att_server, contributor):
    # The scope both SDKs ask for (was 400 invalid_scope).
    tok = contributor.get_token(ATTEST_SCOPE)
    payload = _payload(tok.token)
    assert payload["aud"] == "https://attest.azure.net"
    # The attestation token is no Key Vault token.
    r = requests.get(f"{att_server.url}/keys?api-version=7.5", headers={"Authorization": f"Bearer {tok.token}"},
                     verify=att_server.ca, timeout=30)
    assert r.status_code == 401, r.text


def test_openid_metadata_and_signing_certificates(att_server, client):
    md = client.get_open_id_metadata()
    assert md["issuer"] == att_server.url
    assert md["jwks_uri"] == f"{att_server.url}/certs"
    assert "RS256" in md["id_token_signing_alg_values_supported"]
    signers = client.get_signing_certificates()
    assert signers and all(s.key_id for s in signers)
    # x5c: the signer's certificate first (an RSA key: MAA's RS256), then the server's CA.
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    leaf = x509.load_pem_x509_certificate(signers[0].certificates[0].encode())
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)


def test_policy_lifecycle_and_sgx_attestation(att_server, client, admin_client):
    quote = OCCLUM_QUOTE.read_bytes()
    # Under the built-in SGX policy a quote whose TCB was not evaluated (no collateral) is denied.
    with pytest.raises(HttpResponseError) as e:
        client.attest_sgx_enclave(quote)
    assert e.value.status_code == 403, e.value.message

    # get_policy: the SDK validates the RS256 policy token with the service's certificates.
    text, token = admin_client.get_policy(AttestationType.SGX_ENCLAVE)
    assert text and token.algorithm == "RS256"

    # set_policy (unsigned, AAD mode), then attest with it.
    result, _ = admin_client.set_policy(AttestationType.SGX_ENCLAVE, PERMIT_ALL)
    assert result.policy_resolution == PolicyModification.UPDATED
    try:
        got, _ = admin_client.get_policy(AttestationType.SGX_ENCLAVE)
        assert got == PERMIT_ALL

        res, tok = client.attest_sgx_enclave(quote)
        assert tok.algorithm == "RS256"
        assert res.issuer == att_server.url
        assert res.verifier_type == "sgx"
        assert res.mr_enclave == OCCLUM_MRENCLAVE
        assert res.is_debuggable is not None
        assert res.version == "1.0"
        # x-ms-policy-hash = base64url(SHA-256(base64url(policy text))) of the stored policy.
        b64 = base64.urlsafe_b64encode(PERMIT_ALL.encode()).rstrip(b"=")
        assert res.policy_hash == hashlib.sha256(b64).digest()
        body = tok._get_body()  # the generated model: the deprecated aliases MAA still emits
        assert body.deprecated_version == "1.0" and body.deprecated_tee == "sgx"
        assert body.deprecated_mr_enclave == OCCLUM_MRENCLAVE
        assert body.deprecated_policy_hash == res.policy_hash

        # The same quote inside an Open Enclave report.
        res_oe, tok_oe = client.attest_open_enclave(_oe_report(quote))
        assert res_oe.mr_enclave == OCCLUM_MRENCLAVE and tok_oe.algorithm == "RS256"

        # A draft policy (dry run) by a policy manager: evaluated instead of the stored one; the
        # token is unsigned by design and carries the draft's claim.
        res_d, tok_d = client.attest_sgx_enclave(quote, draft_policy=DRAFT)
        assert tok_d.algorithm == "none"
        assert res_d.mr_enclave == OCCLUM_MRENCLAVE
        assert _payload(tok_d.to_jwt_string()).get("draft-marker") == "from-the-draft"
    finally:
        reset, _ = admin_client.reset_policy(AttestationType.SGX_ENCLAVE)
        assert reset.policy_resolution == PolicyModification.REMOVED
    # After the reset the built-in policy denies again.
    with pytest.raises(HttpResponseError) as e:
        client.attest_sgx_enclave(quote)
    assert e.value.status_code == 403


def test_cases_that_must_fail(att_server, client):
    # A draft policy is a policy author's tool: a principal without policies/manage gets 403,
    # even with a valid attestation token.
    nobody = att_server.credential(att_server.principal("CryptoUser"))
    with AttestationClient(att_server.url, nobody, connection_verify=att_server.ca) as c:
        with pytest.raises(HttpResponseError) as e:
            c.attest_sgx_enclave(OCCLUM_QUOTE.read_bytes(), draft_policy=PERMIT_ALL)
        assert e.value.status_code == 403, e.value.message
    # A wrong client secret: the credential itself fails at the server's token endpoint.
    wrong = att_server.principal(None)
    wrong["client_secret"] = "A" + wrong["client_secret"][1:] if wrong["client_secret"][0] != "A" else "B" + wrong["client_secret"][1:]
    with AttestationClient(att_server.url, att_server.credential(wrong), connection_verify=att_server.ca) as c:
        with pytest.raises(ClientAuthenticationError) as e:
            c.attest_sgx_enclave(OCCLUM_QUOTE.read_bytes(), draft_policy=PERMIT_ALL)
        assert "client authentication failed" in str(e.value)
    # A real quote whose collateral (in the server's collateral directory) expired in 2025:
    # refused at the real time, never a token.
    with pytest.raises(HttpResponseError) as e:
        client.attest_sgx_enclave(PHALA_QUOTE.read_bytes())
    assert e.value.status_code == 400, e.value.message
    assert e.value.response.headers.get("x-ms-error-code") == "evidence_invalid"
    assert "collateral_expired" in e.value.message
    # A tampered quote: the signature check fails (400 evidence_invalid).
    bad = bytearray(OCCLUM_QUOTE.read_bytes())
    bad[100] ^= 0xFF
    with pytest.raises(HttpResponseError) as e:
        client.attest_sgx_enclave(bytes(bad))
    assert e.value.status_code == 400, e.value.message
    assert e.value.response.headers.get("x-ms-error-code") == "evidence_invalid"

"""A workload's TLS identity from a Key Vault certificate that only an attested workload can obtain.

The certificate is issued by Enclava's issuing CA with an exportable key and a key release policy
that requires a simulated-TEE attestation token from the server's own attestation service (issue 12:
"a workload obtains its TLS identity only after attestation"). The workload attests with the `enclava`
CLI (`attest --tee sim --simulate`, runtime data carrying its RSA wrapping key), releases the
certificate's key with the official `KeyClient.release_key`, unwraps `key_hsm` here with
`cryptography`, and serves TLS with Python's `ssl` on loopback; a client verifies the chain to the
Enclava CA fetched from the server and the host name. The certificate's secret (readable by a Secrets
User, without attestation) must never contain the private key.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import threading
import uuid

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.keyvault.certificates import CertificateClient
from azure.keyvault.keys import KeyClient, KeyExportEncryptionAlgorithm
from azure.keyvault.secrets import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from conftest import _binary

CA_ROUTE = "/enclava/certificates/ca"
HOST = "localhost"
# The simulated workload's measurement; the same appraisal policy as test_attestation.py (the
# attestation policy is server-wide, so both modules set an identical one).
MEASUREMENT = "ab" * 48
SIM_POLICY = """package enclava.appraisal

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains {"rule": "tee", "path": "claims.tee", "expected": "sim", "found": input.claims.tee} if input.claims.tee != "sim"

deny contains {"rule": "measurement", "path": "claims.measurement", "expected": "%s", "found": input.claims.measurement} if input.claims.measurement != "%s"
""" % (MEASUREMENT, MEASUREMENT)


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(_binary()), *args, "--url", server.url, "--ca-cert", server.ca],
        capture_output=True,
        text=True,
        timeout=60,
        env={"ENCLAVA_TOKEN_FILE": str(server.data_dir / "admin.token"), "PATH": "/usr/bin:/bin"},
    )


def _admin(server, method: str, path: str, body: dict | None = None) -> dict:
    r = requests.request(
        method,
        f"{server.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        verify=server.ca,
        timeout=30,
    )
    assert r.status_code in (200, 201, 202, 204), f"{method} {path} -> {r.status_code}: {r.text}"
    return r.json() if r.content else {}


def principal_credential(server, role: str) -> ClientSecretCredential:
    sp = _admin(server, "POST", "/enclava/principals", {"kind": "service_principal", "display_name": f"py-{uuid.uuid4().hex[:8]}"})
    _admin(server, "POST", "/enclava/role-assignments", {"principal": sp["client_id"], "role": role})
    return ClientSecretCredential(
        "enclava-test-tenant",
        sp["client_id"],
        sp["client_secret"],
        authority=server.url,
        disable_instance_discovery=True,
        connection_verify=server.ca,
    )


@pytest.fixture(scope="module")
def sim_attestation_policy(server, tmp_path_factory):
    policy = tmp_path_factory.mktemp("tls-attest") / "sim.rego"
    policy.write_text(SIM_POLICY)
    r = _cli(server, "policy", "set", "--type", "sim", "--file", str(policy), "--output", "json")
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def enclava_ca(server) -> x509.Certificate:
    r = requests.get(f"{server.url}{CA_ROUTE}", verify=server.ca, timeout=30)
    assert r.status_code == 200, f"GET {CA_ROUTE} -> {r.status_code}: {r.text}"
    return x509.load_pem_x509_certificates(r.content)[0]


def release_policy(server) -> dict:
    """Key Vault release policy: only the server's own attestation service, for the simulated TEE
    running exactly this measurement."""
    return {
        "version": "1.0.0",
        "anyOf": [
            {
                "authority": server.url,
                "allOf": [
                    {"claim": "x-enclava-tee", "equals": "sim"},
                    {"claim": "x-enclava-measurement", "equals": MEASUREMENT},
                ],
            }
        ],
    }


def create_released_certificate(server, name: str) -> dict:
    """Create an Enclava-issued certificate whose key carries a release policy. The policy's
    `key_props.release_policy` is Enclava's extension (the SDK's CertificatePolicy has no field for
    it), so this one request is made directly on the Key Vault wire."""
    body = {
        "policy": {
            "key_props": {
                "exportable": True,
                "kty": "RSA",
                "key_size": 2048,
                "reuse_key": False,
                "release_policy": {
                    "contentType": "application/json; charset=utf-8",
                    "data": b64u(json.dumps(release_policy(server)).encode()),
                },
            },
            "secret_props": {"contentType": "application/x-pem-file"},
            "x509_props": {
                "subject": f"CN={HOST}",
                "sans": {"dns_names": [HOST]},
                "ekus": ["1.3.6.1.5.5.7.3.1"],
                "validity_months": 1,
            },
            "issuer": {"name": "Enclava"},
        }
    }
    r = requests.post(
        f"{server.url}/certificates/{name}/create?api-version=7.6",
        json=body,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        verify=server.ca,
        timeout=30,
    )
    assert r.status_code == 202, f"create -> {r.status_code}: {r.text}"
    # Key Vault answers the create with the operation in progress; Enclava-issued creates complete
    # within the request, so the operation reads completed right after.
    r = requests.get(
        f"{server.url}/certificates/{name}/pending?api-version=7.6",
        headers={"Authorization": f"Bearer {server.admin_token}"},
        verify=server.ca,
        timeout=30,
    )
    assert r.status_code == 200, f"pending -> {r.status_code}: {r.text}"
    op = r.json()
    assert op["status"] == "completed", op
    return op


def attest_sim(server, tmp_path, holder: rsa.RSAPrivateKey) -> str:
    """The workload's attestation: simulated evidence with its RSA wrapping key in the runtime data
    (it becomes `x-ms-runtime.keys`, where key release finds the key to wrap for)."""
    pub = holder.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "kid": "tls-holder-1",
        "use": "enc",
        "key_ops": ["encrypt"],
        "n": b64u(pub.n.to_bytes(256, "big")),
        "e": b64u(pub.e.to_bytes(3, "big")),
    }
    rd = tmp_path / "runtime.json"
    rd.write_text(json.dumps({"keys": [jwk]}))
    r = _cli(
        server, "attest", "--tee", "sim", "--simulate", MEASUREMENT, "--challenge", "--runtime-data", str(rd),
        "--output", "json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["claims"]["x-enclava-tee"] == "sim"
    assert out["claims"]["x-ms-runtime"]["keys"][0]["kid"] == "tls-holder-1"
    return out["token"]


def unwrap_release(server, jws: str, holder: rsa.RSAPrivateKey) -> tuple[dict, bytes]:
    """Check the release JWS (x5c leaf signature, chained to the server's CA) and unwrap key_hsm
    (RSA-OAEP-256 over the first 256 bytes, then AES key wrap with padding, RFC 5649)."""
    h64, p64, s64 = jws.split(".")
    header = json.loads(unb64u(h64))
    payload = json.loads(unb64u(p64))
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    leaf.public_key().verify(unb64u(s64), f"{h64}.{p64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(open(server.ca, "rb").read()))
    key = payload["response"]["key"]["key"]
    kh = json.loads(unb64u(key["key_hsm"]))
    assert kh["header"]["kid"] == "tls-holder-1"
    ct = unb64u(kh["ciphertext"])
    aes = holder.decrypt(ct[:256], padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    return payload, aes_key_unwrap_with_padding(aes, ct[256:])


def serve_once(ctx: ssl.SSLContext) -> tuple[int, threading.Thread, list]:
    """A loopback TLS server answering one connection: reads a line, answers `hello <line>`."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list = []

    def run():
        with listener:
            listener.settimeout(30)
            try:
                conn, _ = listener.accept()
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    line = tls.recv(1024)
                    tls.sendall(b"hello " + line)
            except Exception as e:  # noqa: BLE001 - surfaced to the test through `errors`
                errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t, errors


def tls_request(port: int, cafile: str, server_hostname: str) -> tuple[bytes, dict]:
    client = ssl.create_default_context(cafile=cafile)  # check_hostname and CERT_REQUIRED by default
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with client.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.sendall(b"workload")
            return tls.recv(1024), tls.getpeercert()


def test_tls_identity_released_to_an_attested_workload(server, sim_attestation_policy, enclava_ca, tmp_path):
    name = f"tls-{uuid.uuid4().hex[:8]}"
    op = create_released_certificate(server, name)
    assert op["issuer"]["name"] == "Enclava"

    admin = server.credential()
    with CertificateClient(server.url, admin, **server.client_kwargs()) as certs:
        cert = certs.get_certificate(name)
    leaf = x509.load_der_x509_certificate(bytes(cert.cer))
    leaf.verify_directly_issued_by(enclava_ca)

    # The certificate's secret carries the chain only: a Secrets User cannot bypass attestation.
    reader = principal_credential(server, "Key Vault Secrets User")
    with SecretClient(server.url, reader, **server.client_kwargs()) as secrets:
        secret = secrets.get_secret(name)
    assert secret.properties.content_type == "application/x-pem-file"
    assert "PRIVATE KEY" not in secret.value
    chain = x509.load_pem_x509_certificates(secret.value.encode())
    assert chain[0] == leaf
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(secret.value.encode(), password=None)

    # The workload: a principal that may only release keys, holding an ephemeral wrapping key.
    holder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    workload = principal_credential(server, "Key Vault Crypto Service Release User")
    with KeyClient(server.url, workload, **server.client_kwargs()) as keys:
        # Without attestation from the named authority: refused (a token of another trusted issuer
        # is not enough). conftest's test issuer signs like test_release.py does.
        from test_release import attestation_token as foreign_token

        with pytest.raises(HttpResponseError) as e:
            keys.release_key(name, foreign_token(server, holder))
        assert e.value.status_code == 403

        token = attest_sim(server, tmp_path, holder)
        released = keys.release_key(
            name, token, version=cert.properties.version, algorithm=KeyExportEncryptionAlgorithm.rsa_aes_key_wrap_256
        )
    payload, pkcs8 = unwrap_release(server, released.value, holder)
    assert payload["response"]["key"]["key"]["kid"] == cert.key_id
    private = serialization.load_der_private_key(pkcs8, password=None)
    assert private.public_key().public_numbers() == leaf.public_key().public_numbers()

    # The workload builds its TLS identity (key + chain, leaf first) and serves on loopback.
    key_file = tmp_path / "tls.key"
    key_file.write_bytes(
        private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    chain_file = tmp_path / "tls-chain.pem"
    chain_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    ca_file = tmp_path / "enclava-ca.pem"
    ca_file.write_bytes(enclava_ca.public_bytes(serialization.Encoding.PEM))

    def server_ctx() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(chain_file), str(key_file))
        return ctx

    # A client trusting only the Enclava CA verifies the chain and the host name.
    port, t, errors = serve_once(server_ctx())
    reply, peer = tls_request(port, str(ca_file), HOST)
    t.join(10)
    assert reply == b"hello workload" and not errors
    assert ("DNS", HOST) in peer["subjectAltName"]

    # The same identity is refused for another host name ...
    port, t, _ = serve_once(server_ctx())
    with pytest.raises(ssl.SSLCertVerificationError, match="match|mismatch"):
        tls_request(port, str(ca_file), "vault.example")
    t.join(10)
    # ... and by a client that trusts only the server's own TLS CA (a different CA).
    port, t, _ = serve_once(server_ctx())
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_request(port, server.ca, HOST)
    t.join(10)


def test_release_policy_requires_exportable_and_secret_of_exportable_key_has_it(server, enclava_ca):
    """Contrast: without a release policy an exportable certificate's PEM secret has the key; a
    release policy with a non-exportable key is refused (400), as for keys."""
    name = f"tls-plain-{uuid.uuid4().hex[:8]}"
    with CertificateClient(server.url, server.credential(), **server.client_kwargs()) as certs:
        from azure.keyvault.certificates import CertificateContentType, CertificatePolicy

        certs.begin_create_certificate(
            name,
            CertificatePolicy(
                issuer_name="Enclava", subject=f"CN={HOST}", san_dns_names=[HOST],
                content_type=CertificateContentType.pem,
            ),
        ).result()
    with SecretClient(server.url, server.credential(), **server.client_kwargs()) as secrets:
        assert "-----BEGIN PRIVATE KEY-----" in secrets.get_secret(name).value

    body = {
        "policy": {
            "key_props": {
                "exportable": False,
                "kty": "RSA",
                "key_size": 2048,
                "release_policy": {"data": b64u(json.dumps(release_policy(server)).encode())},
            },
            "x509_props": {"subject": f"CN={HOST}"},
            "issuer": {"name": "Enclava"},
        }
    }
    r = requests.post(
        f"{server.url}/certificates/{name}-ne/create?api-version=7.6",
        json=body,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        verify=server.ca,
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"]

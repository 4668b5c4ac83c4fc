"""The attestation service seen from a generic OpenID Connect / JWT consumer: simulated evidence is
attested with the `enclava` CLI (a fresh challenge bound into the runtime data), and the token is
validated with PyJWT using nothing but the discovery document at the server root and the JWKS it
points to (`PyJWKClient`), checking the signature, `iss` and `exp`."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time

import jwt
import pytest
import requests

from conftest import _binary

MEASUREMENT = "ab" * 48
SIM_POLICY = """package enclava.appraisal

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains {"rule": "tee", "path": "claims.tee", "expected": "sim", "found": input.claims.tee} if input.claims.tee != "sim"

deny contains {"rule": "measurement", "path": "claims.measurement", "expected": "%s", "found": input.claims.measurement} if input.claims.measurement != "%s"
""" % (MEASUREMENT, MEASUREMENT)


def _cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(_binary()), *args, "--url", server.url, "--ca-cert", server.ca],
        capture_output=True,
        text=True,
        timeout=60,
        env={"ENCLAVA_TOKEN_FILE": str(server.data_dir / "admin.token"), "PATH": "/usr/bin:/bin"},
    )


def _attest_sim(server, tmp_path) -> subprocess.CompletedProcess:
    rd = tmp_path / "runtime.json"
    rd.write_text(json.dumps({"purpose": "pytest"}))
    return _cli(
        server,
        "attest",
        "--tee",
        "sim",
        "--simulate",
        MEASUREMENT,
        "--challenge",
        "--runtime-data",
        str(rd),
        "--output",
        "json",
    )


@pytest.fixture(scope="module")
def sim_token(server, tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("attest")
    # Under the built-in policy simulated evidence is denied, naming the rule.
    denied = _attest_sim(server, tmp)
    assert denied.returncode == 1, denied.stderr
    assert "sim_not_allowed" in denied.stderr, denied.stderr
    policy = tmp / "sim.rego"
    policy.write_text(SIM_POLICY)
    r = _cli(server, "policy", "set", "--type", "sim", "--file", str(policy), "--output", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["policy"]["language"].lower() == "rego"
    ok = _attest_sim(server, tmp)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["claims"]["x-enclava-tee"] == "sim"
    return out["token"]


def _discovery(server) -> dict:
    r = requests.get(f"{server.url}/.well-known/openid-configuration", verify=server.ca, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_token_validates_with_discovery_and_jwks_only(server, sim_token):
    disc = _discovery(server)
    assert disc["issuer"] == server.url
    assert disc["jwks_uri"] == f"{server.url}/certs"
    ctx = ssl.create_default_context(cafile=server.ca)
    jwks_client = jwt.PyJWKClient(disc["jwks_uri"], ssl_context=ctx)
    key = jwks_client.get_signing_key_from_jwt(sim_token)
    claims = jwt.decode(
        sim_token,
        key.key,
        algorithms=disc["id_token_signing_alg_values_supported"],
        issuer=disc["issuer"],
        options={"require": ["exp", "iat", "iss"], "verify_aud": False},
    )
    now = time.time()
    assert claims["iss"] == server.url
    assert now - 120 <= claims["iat"] <= now + 120
    assert claims["exp"] > now
    assert claims["exp"] - claims["iat"] == 300
    assert claims["x-enclava-simulated"] is True
    assert claims["x-enclava-measurement"] == MEASUREMENT
    # The challenge the CLI fetched is the token's nonce and is inside the bound runtime data.
    assert claims["nonce"] == claims["x-ms-runtime"]["nonce"]
    assert claims["x-ms-runtime"]["purpose"] == "pytest"
    assert jwt.get_unverified_header(sim_token)["jku"] == disc["jwks_uri"]


def test_tampered_and_foreign_issuer_tokens_fail(server, sim_token):
    disc = _discovery(server)
    ctx = ssl.create_default_context(cafile=server.ca)
    key = jwt.PyJWKClient(disc["jwks_uri"], ssl_context=ctx).get_signing_key_from_jwt(sim_token)
    algs = disc["id_token_signing_alg_values_supported"]
    h, p, s = sim_token.split(".")
    payload = json.loads(jwt.utils.base64url_decode(p))
    payload["x-enclava-measurement"] = "00" * 48
    forged = ".".join([h, jwt.utils.base64url_encode(json.dumps(payload).encode()).decode(), s])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key.key, algorithms=algs, options={"verify_aud": False})
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(sim_token, key.key, algorithms=algs, issuer="https://other.example", options={"verify_aud": False})


def test_trailing_slash_certs_and_cli_verify(server, sim_token, tmp_path):
    r = requests.get(f"{server.url}/certs/", verify=server.ca, timeout=30)
    assert r.status_code == 200
    jwk = r.json()["keys"][0]
    assert jwk["kid"] == jwt.get_unverified_header(sim_token)["kid"]
    # x5c: the signer's certificate, issued by the server's local CA (the one clients trust).
    from cryptography import x509

    leaf = x509.load_der_x509_certificate(base64.b64decode(jwk["x5c"][0]))
    ca = x509.load_pem_x509_certificate(open(server.ca, "rb").read())
    leaf.verify_directly_issued_by(ca)
    # The JWK is the certificate's key: RSA (RS256, MAA's algorithm) by default.
    nums = leaf.public_key().public_numbers()
    assert jwk["kty"] == "RSA"
    assert int.from_bytes(jwt.utils.base64url_decode(jwk["n"]), "big") == nums.n
    assert int.from_bytes(jwt.utils.base64url_decode(jwk["e"]), "big") == nums.e
    v = subprocess.run(
        [
            str(_binary()),
            "token",
            "verify",
            sim_token,
            "--jwks-url",
            f"{server.url}/certs",
            "--ca-cert",
            server.ca,
            "--issuer",
            server.url,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert v.returncode == 0, v.stderr
    assert json.loads(v.stdout)["valid"] is True

"""Secure key release through the official SDK (`KeyClient.release_key`), checked independently of
Enclava's code: the released `key_hsm` is unwrapped here with `cryptography` following the documented
layout (RSA-OAEP with SHA-1/256/384 on the first 256 bytes, then AES key unwrap with padding, RFC 5649),
the JWS signature is checked with its x5c leaf and the leaf against the server's CA for its host name.

The attestation tokens come from the test issuer conftest.py configures as trusted
(ENCLAVA_TRUSTED_ISSUERS); they carry an RSA key this test holds in `x-ms-runtime.keys`."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import KeyExportEncryptionAlgorithm, KeyReleasePolicy
from azure.keyvault.keys.crypto import EncryptionAlgorithm
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from conftest import TEST_ATTESTATION_ISSUER, remote_client


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@pytest.fixture(scope="module")
def holder_key():
    """The workload's ephemeral RSA key (the private half never leaves this test)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def attestation_token(server, holder_key, **extra_claims) -> str:
    key = serialization.load_pem_private_key(server.attestation_key_pem.read_bytes(), password=None)
    pub = holder_key.public_key().public_numbers()
    now = int(time.time())
    claims = {
        "iss": TEST_ATTESTATION_ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-sevsnpvm-is-debuggable": False,
        "x-ms-sevsnpvm-vmpl": 0,
        "x-ms-runtime": {
            "keys": [
                {"kty": "EC", "kid": "not-this-one", "crv": "P-256", "key_ops": ["encrypt"], "x": "AA", "y": "AA"},
                {
                    "kty": "RSA",
                    "kid": "holder-1",
                    "key_ops": ["encrypt"],
                    "n": b64u(pub.n.to_bytes(256, "big")),
                    "e": b64u(pub.e.to_bytes(3, "big")),
                },
            ]
        },
    }
    claims.update(extra_claims)
    header = {"alg": "ES256", "kid": "pytest-att-1", "typ": "JWT"}
    signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(claims).encode())}"
    r, s = utils.decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


POLICY = {
    "version": "1.0.0",
    "anyOf": [
        {
            # Written with a trailing slash and upper case: authorities are normalised.
            "authority": TEST_ATTESTATION_ISSUER.upper() + "/",
            "allOf": [
                {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
                {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"},
                {"claim": "x-ms-sevsnpvm-vmpl", "equals": "0"},
            ],
        }
    ],
}


def release_policy() -> KeyReleasePolicy:
    return KeyReleasePolicy(json.dumps(POLICY).encode())


OAEP_HASH = {
    None: hashes.SHA1,
    KeyExportEncryptionAlgorithm.ckm_rsa_aes_key_wrap: hashes.SHA1,
    KeyExportEncryptionAlgorithm.rsa_aes_key_wrap_256: hashes.SHA256,
    KeyExportEncryptionAlgorithm.rsa_aes_key_wrap_384: hashes.SHA384,
}


def open_release(server, jws: str, holder_key, algorithm=None) -> tuple[dict, bytes]:
    """Check the JWS (x5c leaf signature, chain to ca.pem, host name) and unwrap key_hsm."""
    h64, p64, s64 = jws.split(".")
    header = json.loads(unb64u(h64))
    payload = json.loads(unb64u(p64))
    assert header["alg"] == "RS256"
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
    leaf = chain[0]
    assert header["x5t#S256"] == b64u(leaf.fingerprint(hashes.SHA256()))
    leaf.public_key().verify(unb64u(s64), f"{h64}.{p64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    ca = x509.load_pem_x509_certificate(open(server.ca, "rb").read())
    leaf.verify_directly_issued_by(ca)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)

    key = payload["response"]["key"]["key"]
    kh = json.loads(unb64u(key["key_hsm"]))
    enc = algorithm.value if algorithm is not None else "CKM_RSA_AES_KEY_WRAP"
    assert kh["header"]["enc"] == enc and kh["header"]["kid"] == "holder-1"
    assert payload["request"]["enc"] == enc
    ct = unb64u(kh["ciphertext"])
    h = OAEP_HASH[algorithm]
    aes = holder_key.decrypt(ct[:256], padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None))
    assert len(aes) == 32
    return payload, aes_key_unwrap_with_padding(aes, ct[256:])


@pytest.mark.parametrize(
    "algorithm",
    [
        None,
        KeyExportEncryptionAlgorithm.ckm_rsa_aes_key_wrap,
        KeyExportEncryptionAlgorithm.rsa_aes_key_wrap_256,
        KeyExportEncryptionAlgorithm.rsa_aes_key_wrap_384,
    ],
)
def test_release_oct_key(key_client, server, credential, unique_name, holder_key, algorithm):
    key = key_client.create_oct_key(
        unique_name, size=256, hardware_protected=True, exportable=True, release_policy=release_policy()
    )
    token = attestation_token(server, holder_key)
    kwargs = {"algorithm": algorithm} if algorithm is not None else {}
    result = key_client.release_key(unique_name, token, nonce="n-123", **kwargs)
    payload, material = open_release(server, result.value, holder_key, algorithm)
    assert payload["request"]["nonce"] == "n-123"
    assert payload["response"]["key"]["key"]["kid"] == key.id
    assert len(material) == 32
    # The released material is the key: the vault's A256GCM ciphertext opens with it locally.
    plaintext, aad = os.urandom(64), b"release-check"
    enc = remote_client(key.id, server, credential).encrypt(
        EncryptionAlgorithm.a256_gcm, plaintext, additional_authenticated_data=aad
    )
    assert AESGCM(material).decrypt(enc.iv, enc.ciphertext + enc.tag, aad) == plaintext


def test_release_rsa_key_versioned(key_client, server, unique_name, holder_key):
    key = key_client.create_rsa_key(
        unique_name, size=2048, hardware_protected=True, exportable=True, release_policy=release_policy()
    )
    result = key_client.release_key(
        unique_name,
        attestation_token(server, holder_key),
        version=key.properties.version,
        algorithm=KeyExportEncryptionAlgorithm.rsa_aes_key_wrap_256,
    )
    payload, der = open_release(server, result.value, holder_key, KeyExportEncryptionAlgorithm.rsa_aes_key_wrap_256)
    private = serialization.load_der_private_key(der, password=None)
    nums = private.public_key().public_numbers()
    assert nums.n == int.from_bytes(key.key.n, "big")
    assert nums.e == int.from_bytes(key.key.e, "big")
    assert payload["response"]["key"]["key"]["n"] == b64u(key.key.n)


def test_release_ec_key(key_client, server, unique_name, holder_key):
    key = key_client.create_ec_key(
        unique_name, curve="P-384", hardware_protected=True, exportable=True, release_policy=release_policy()
    )
    result = key_client.release_key(unique_name, attestation_token(server, holder_key))
    _, der = open_release(server, result.value, holder_key)
    nums = serialization.load_der_private_key(der, password=None).public_key().public_numbers()
    assert nums.x == int.from_bytes(key.key.x, "big")
    assert nums.y == int.from_bytes(key.key.y, "big")


def test_release_denied_by_policy_names_the_condition(key_client, server, unique_name, holder_key):
    key_client.create_oct_key(
        unique_name, size=256, hardware_protected=True, exportable=True, release_policy=release_policy()
    )
    token = attestation_token(server, holder_key, **{"x-ms-sevsnpvm-is-debuggable": True})
    with pytest.raises(HttpResponseError) as e:
        key_client.release_key(unique_name, token)
    assert e.value.status_code == 403
    assert e.value.response.json()["error"]["code"] == "Forbidden"
    assert "x-ms-sevsnpvm-is-debuggable" in e.value.message


def test_release_rejects_untrusted_and_expired_tokens(key_client, server, unique_name, holder_key):
    key_client.create_oct_key(
        unique_name, size=256, hardware_protected=True, exportable=True, release_policy=release_policy()
    )
    expired = attestation_token(server, holder_key, exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200)
    with pytest.raises(HttpResponseError) as e:
        key_client.release_key(unique_name, expired)
    assert e.value.status_code == 403 and "expired" in e.value.message
    wrong_issuer = attestation_token(server, holder_key, iss="https://attest.elsewhere.invalid")
    with pytest.raises(HttpResponseError) as e:
        key_client.release_key(unique_name, wrong_issuer)
    assert e.value.status_code == 403 and "not trusted" in e.value.message
    no_wrapping_key = attestation_token(server, holder_key, **{"x-ms-runtime": {"keys": []}})
    with pytest.raises(HttpResponseError) as e:
        key_client.release_key(unique_name, no_wrapping_key)
    assert e.value.status_code == 400 and "x-ms-runtime.keys" in e.value.message

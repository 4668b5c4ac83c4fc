"""Every cryptographic operation through the official CryptographyClient, both the way customers use it
(the SDK does public-key operations locally when it holds the public key) and forced to the server, with
RSA and EC signatures checked independently by `cryptography` against the exported public JWK."""

from __future__ import annotations

import hashlib
import os

import pytest
from azure.keyvault.keys.crypto import (
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from conftest import remote_client

HASHES = {"256": (hashlib.sha256, hashes.SHA256), "384": (hashlib.sha384, hashes.SHA384)}
# The four Key Vault curves by fixture key: (curve, JWS algorithm, digest, cryptography hash, coordinate bytes).
EC_CURVES = {
    "256": ("P-256", "ES256", hashlib.sha256, hashes.SHA256, 32),
    "384": ("P-384", "ES384", hashlib.sha384, hashes.SHA384, 48),
    "521": ("P-521", "ES512", hashlib.sha512, hashes.SHA512, 66),
    "256K": ("P-256K", "ES256K", hashlib.sha256, hashes.SHA256, 32),
}


@pytest.fixture(scope="module")
def rsa_key(key_client):
    import uuid

    return key_client.create_rsa_key(f"crypto-rsa-{uuid.uuid4().hex[:8]}", size=2048)


@pytest.fixture(scope="module")
def ec_keys(key_client):
    import uuid

    suffix = uuid.uuid4().hex[:8]
    return {
        "256": key_client.create_ec_key(f"crypto-ec256-{suffix}", curve="P-256"),
        "384": key_client.create_ec_key(f"crypto-ec384-{suffix}", curve="P-384"),
        "521": key_client.create_ec_key(f"crypto-ec521-{suffix}", curve="P-521"),
        "256K": key_client.create_ec_key(f"crypto-ec256k-{suffix}", curve="P-256K"),
    }


@pytest.fixture(scope="module")
def oct_key(key_client):
    import uuid

    return key_client.create_oct_key(f"crypto-oct-{uuid.uuid4().hex[:8]}", size=256, hardware_protected=True)


def _rsa_public(jwk):
    return rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()


def _ec_public(jwk):
    curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(), "P-256K": ec.SECP256K1()}[
        getattr(jwk.crv, "value", jwk.crv)
    ]
    return ec.EllipticCurvePublicNumbers(
        int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"), curve
    ).public_key()


@pytest.mark.parametrize("alg", [EncryptionAlgorithm.rsa_oaep, EncryptionAlgorithm.rsa_oaep_256])
def test_rsa_encrypt_decrypt(rsa_key, server, credential, alg):
    plaintext = b"attack at dawn " + os.urandom(16)
    # Customer path: SDK encrypts locally with the public key, the server decrypts.
    local = CryptographyClient(rsa_key, credential, **server.client_kwargs())
    enc = local.encrypt(alg, plaintext)
    assert enc.key_id == rsa_key.id and enc.algorithm == alg
    assert len(enc.ciphertext) == 256
    remote = remote_client(rsa_key.id, server, credential)
    dec = remote.decrypt(alg, enc.ciphertext)
    assert dec.plaintext == plaintext
    assert dec.key_id == rsa_key.id
    # Server path both ways; OAEP is randomized so two encryptions differ.
    enc2 = remote.encrypt(alg, plaintext)
    assert enc2.ciphertext != enc.ciphertext
    assert remote.decrypt(alg, enc2.ciphertext).plaintext == plaintext


def test_rsa_decrypt_with_wrong_padding_fails(rsa_key, server, credential):
    remote = remote_client(rsa_key.id, server, credential)
    enc = remote.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"secret")
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as e:
        remote.decrypt(EncryptionAlgorithm.rsa_oaep, enc.ciphertext)
    assert e.value.status_code == 400


def test_a256gcm_encrypt_decrypt(oct_key, server, credential):
    client = remote_client(oct_key.id, server, credential)
    plaintext = os.urandom(100)
    aad = b"header v1"
    enc = client.encrypt(EncryptionAlgorithm.a256_gcm, plaintext, additional_authenticated_data=aad)
    assert enc.iv and len(enc.iv) == 12
    assert enc.tag and len(enc.tag) == 16
    assert enc.ciphertext != plaintext and len(enc.ciphertext) == len(plaintext)
    dec = client.decrypt(
        EncryptionAlgorithm.a256_gcm,
        enc.ciphertext,
        iv=enc.iv,
        authentication_tag=enc.tag,
        additional_authenticated_data=aad,
    )
    assert dec.plaintext == plaintext

    from azure.core.exceptions import HttpResponseError

    tampered = bytes([enc.ciphertext[0] ^ 1]) + enc.ciphertext[1:]
    with pytest.raises(HttpResponseError) as e:
        client.decrypt(
            EncryptionAlgorithm.a256_gcm,
            tampered,
            iv=enc.iv,
            authentication_tag=enc.tag,
            additional_authenticated_data=aad,
        )
    assert e.value.status_code == 400
    with pytest.raises(HttpResponseError):
        client.decrypt(
            EncryptionAlgorithm.a256_gcm,
            enc.ciphertext,
            iv=enc.iv,
            authentication_tag=enc.tag,
            additional_authenticated_data=b"other header",
        )


@pytest.mark.parametrize("alg", [KeyWrapAlgorithm.rsa_oaep, KeyWrapAlgorithm.rsa_oaep_256])
def test_rsa_wrap_unwrap(rsa_key, server, credential, alg):
    cek = os.urandom(32)
    local = CryptographyClient(rsa_key, credential, **server.client_kwargs())
    wrapped = local.wrap_key(alg, cek)
    remote = remote_client(rsa_key.id, server, credential)
    assert remote.unwrap_key(alg, wrapped.encrypted_key).key == cek
    wrapped2 = remote.wrap_key(alg, cek)
    assert wrapped2.key_id == rsa_key.id
    assert remote.unwrap_key(alg, wrapped2.encrypted_key).key == cek


@pytest.mark.parametrize(
    ("alg", "cek_len", "wrapped_len"),
    [
        (KeyWrapAlgorithm.aes_256, 32, 40),
        (KeyWrapAlgorithm.ckm_aes_key_wrap_pad, 20, 32),
        (KeyWrapAlgorithm.ckm_aes_key_wrap_pad, 32, 40),
    ],
)
def test_aes_wrap_unwrap(oct_key, server, credential, alg, cek_len, wrapped_len):
    # Always remote: the SDK has no symmetric key material (the vault never returns `k`).
    client = remote_client(oct_key.id, server, credential)
    cek = os.urandom(cek_len)
    wrapped = client.wrap_key(alg, cek)
    assert len(wrapped.encrypted_key) == wrapped_len
    assert client.unwrap_key(alg, wrapped.encrypted_key).key == cek
    # Key wrap is deterministic (RFC 3394 / 5649): same key, same input, same output.
    assert client.wrap_key(alg, cek).encrypted_key == wrapped.encrypted_key


def test_aes_unwrap_rejects_corrupted(oct_key, server, credential):
    from azure.core.exceptions import HttpResponseError

    client = remote_client(oct_key.id, server, credential)
    wrapped = client.wrap_key(KeyWrapAlgorithm.aes_256, os.urandom(32)).encrypted_key
    with pytest.raises(HttpResponseError) as e:
        client.unwrap_key(KeyWrapAlgorithm.aes_256, bytes([wrapped[0] ^ 0x80]) + wrapped[1:])
    assert e.value.status_code == 400


@pytest.mark.parametrize("alg", ["PS256", "PS384", "RS256", "RS384"])
def test_rsa_sign_verify(rsa_key, server, credential, alg):
    size = alg[2:]
    hash_fn, hash_cls = HASHES[size]
    digest = hash_fn(b"message for " + alg.encode()).digest()
    remote = remote_client(rsa_key.id, server, credential)
    sig = remote.sign(SignatureAlgorithm(alg), digest)
    assert sig.key_id == rsa_key.id and len(sig.signature) == 256
    # The server verifies its own signature, and rejects a wrong digest.
    assert remote.verify(SignatureAlgorithm(alg), digest, sig.signature).is_valid is True
    other = hash_fn(b"another message").digest()
    assert remote.verify(SignatureAlgorithm(alg), other, sig.signature).is_valid is False
    # The SDK's local verification agrees.
    local = CryptographyClient(rsa_key, credential, **server.client_kwargs())
    assert local.verify(SignatureAlgorithm(alg), digest, sig.signature).is_valid is True
    # And an independent implementation agrees, from the exported public JWK alone.
    public = _rsa_public(rsa_key.key)
    if alg.startswith("PS"):
        pad = padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)
    else:
        pad = padding.PKCS1v15()
    public.verify(sig.signature, digest, pad, utils.Prehashed(hash_cls()))
    with pytest.raises(InvalidSignature):
        public.verify(sig.signature, other, pad, utils.Prehashed(hash_cls()))


@pytest.mark.parametrize("size", ["256", "384", "521", "256K"])
def test_ec_sign_verify(ec_keys, server, credential, size):
    """All four Key Vault curves (P-521/ES512 and P-256K/ES256K included): signed by the server,
    verified by the server, by the SDK locally (CryptographyClient with the key's public JWK) and by
    `cryptography` independently."""
    key = ec_keys[size]
    crv, alg_name, hash_fn, hash_cls, coord = EC_CURVES[size]
    assert getattr(key.key.crv, "value", key.key.crv) == crv
    assert len(key.key.x) == coord and len(key.key.y) == coord, "JWK coordinates at the curve's fixed length"
    alg = SignatureAlgorithm(alg_name)
    digest = hash_fn(b"ec message").digest()
    remote = remote_client(key.id, server, credential)
    sig = remote.sign(alg, digest)
    assert len(sig.signature) == 2 * coord, "JWS ECDSA signatures are raw r||s"
    assert remote.verify(alg, digest, sig.signature).is_valid is True
    assert remote.verify(alg, hash_fn(b"other").digest(), sig.signature).is_valid is False
    local = CryptographyClient(key, credential, **server.client_kwargs())
    assert local.verify(alg, digest, sig.signature).is_valid is True
    assert local.verify(alg, hash_fn(b"other").digest(), sig.signature).is_valid is False
    # Verify-locally from a JWK alone (no service call possible: the credential is never asked).
    offline = CryptographyClient.from_jwk(key.key)
    assert offline.verify(alg, digest, sig.signature).is_valid is True
    r = int.from_bytes(sig.signature[:coord], "big")
    s = int.from_bytes(sig.signature[coord:], "big")
    der = utils.encode_dss_signature(r, s)
    _ec_public(key.key).verify(der, digest, ec.ECDSA(utils.Prehashed(hash_cls())))
    with pytest.raises(InvalidSignature):
        _ec_public(key.key).verify(der, hash_fn(b"other").digest(), ec.ECDSA(utils.Prehashed(hash_cls())))


def test_sign_rejects_wrong_digest_length(ec_keys, server, credential):
    from azure.core.exceptions import HttpResponseError

    remote = remote_client(ec_keys["256"].id, server, credential)
    with pytest.raises(HttpResponseError) as e:
        remote.sign(SignatureAlgorithm.es256, b"\x01" * 48)
    assert e.value.status_code == 400


def test_key_ops_restrict_operations(key_client, server, credential):
    import uuid

    from azure.core.exceptions import HttpResponseError

    key = key_client.create_rsa_key(f"ops-{uuid.uuid4().hex[:8]}", size=2048, key_operations=["sign", "verify"])
    remote = remote_client(key.id, server, credential)
    with pytest.raises(HttpResponseError) as e:
        remote.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"x")
    assert e.value.status_code in (400, 403)
    assert remote.sign(SignatureAlgorithm.ps256, hashlib.sha256(b"x").digest()).signature

"""Key import (PUT /keys/{name}) through KeyClient.import_key with JWKs built by `cryptography`,
and validity periods (nbf/exp) enforced by the server."""

from __future__ import annotations

import datetime
import hashlib
import os

import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import JsonWebKey, KeyType
from azure.keyvault.keys.crypto import EncryptionAlgorithm, KeyWrapAlgorithm, SignatureAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from conftest import remote_client


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _rsa_jwk(private: rsa.RSAPrivateKey) -> JsonWebKey:
    nums = private.private_numbers()
    pub = nums.public_numbers
    return JsonWebKey(
        kty=KeyType.rsa,
        n=_int_bytes(pub.n),
        e=_int_bytes(pub.e),
        d=_int_bytes(nums.d),
        p=_int_bytes(nums.p),
        q=_int_bytes(nums.q),
        dp=_int_bytes(nums.dmp1),
        dq=_int_bytes(nums.dmq1),
        qi=_int_bytes(nums.iqmp),
        key_ops=["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
    )


def test_import_rsa_key(key_client, server, credential, unique_name):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    imported = key_client.import_key(unique_name, _rsa_jwk(private))
    assert imported.name == unique_name
    assert imported.key.d is None, "imported private material is never returned"
    assert int.from_bytes(imported.key.n, "big") == private.public_key().public_numbers().n

    remote = remote_client(imported.id, server, credential)
    # The server signs with the imported private key: the original public key verifies it.
    digest = hashlib.sha256(b"imported").digest()
    sig = remote.sign(SignatureAlgorithm.ps256, digest).signature
    private.public_key().verify(
        sig, digest, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), utils.Prehashed(hashes.SHA256())
    )
    # And decrypts what the original key encrypted.
    ct = private.public_key().encrypt(
        b"to the vault", padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    )
    assert remote.decrypt(EncryptionAlgorithm.rsa_oaep_256, ct).plaintext == b"to the vault"


def test_import_ec_key(key_client, server, credential, unique_name):
    private = ec.generate_private_key(ec.SECP256R1())
    nums = private.private_numbers()
    jwk = JsonWebKey(
        kty=KeyType.ec,
        crv="P-256",
        x=nums.public_numbers.x.to_bytes(32, "big"),
        y=nums.public_numbers.y.to_bytes(32, "big"),
        d=nums.private_value.to_bytes(32, "big"),
        key_ops=["sign", "verify"],
    )
    imported = key_client.import_key(unique_name, jwk)
    assert imported.key.crv == "P-256" and imported.key.d is None
    remote = remote_client(imported.id, server, credential)
    digest = hashlib.sha256(b"ec import").digest()
    sig = remote.sign(SignatureAlgorithm.es256, digest).signature
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    private.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_import_oct_key_unwraps_local_wrap(key_client, server, credential, unique_name):
    kek = os.urandom(32)
    jwk = JsonWebKey(kty=KeyType.oct_hsm, k=kek, key_ops=["wrapKey", "unwrapKey", "encrypt", "decrypt"])
    imported = key_client.import_key(unique_name, jwk, hardware_protected=True)
    assert imported.key.k is None
    cek = os.urandom(20)
    wrapped = aes_key_wrap_with_padding(kek, cek)  # RFC 5649, computed independently
    remote = remote_client(imported.id, server, credential)
    assert remote.unwrap_key(KeyWrapAlgorithm.ckm_aes_key_wrap_pad, wrapped).key == cek


def test_import_rejects_public_only_jwk(key_client, unique_name):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = private.public_key().public_numbers()
    with pytest.raises(HttpResponseError) as e:
        key_client.import_key(unique_name, JsonWebKey(kty=KeyType.rsa, n=_int_bytes(pub.n), e=_int_bytes(pub.e)))
    assert e.value.status_code == 400


def test_expired_and_not_yet_valid_keys_refuse_operations(key_client, server, credential, unique_name):
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = key_client.create_ec_key(unique_name + "-exp", curve="P-256", expires_on=now - datetime.timedelta(hours=1))
    future = key_client.create_ec_key(unique_name + "-nbf", curve="P-256", not_before=now + datetime.timedelta(hours=1))
    assert expired.properties.expires_on is not None
    assert future.properties.not_before is not None
    for key in (expired, future):
        with pytest.raises(HttpResponseError) as e:
            remote_client(key.id, server, credential).sign(SignatureAlgorithm.es256, b"\x01" * 32)
        assert e.value.status_code in (400, 403), e.value


@pytest.mark.parametrize("field", ["n", "e", "d", "p", "q", "dp", "dq", "qi"])
def test_import_rsa_key_with_leading_zero(key_client, server, credential, unique_name, field):
    """Microsoft's SDK tests import RSA JWKs whose `n` carries a leading zero byte (Azure accepts
    non-minimal JWK integers): every component with a leading zero imports, and the key works."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = _rsa_jwk(private)
    setattr(jwk, field, b"\x00" + getattr(jwk, field))
    imported = key_client.import_key(unique_name, jwk)
    assert int.from_bytes(imported.key.n, "big") == private.public_key().public_numbers().n
    assert imported.key.n[0] != 0, "the public modulus comes back in minimal form"
    remote = remote_client(imported.id, server, credential)
    digest = hashlib.sha256(b"leading zero").digest()
    sig = remote.sign(SignatureAlgorithm.rs256, digest).signature
    private.public_key().verify(sig, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


@pytest.mark.parametrize(
    "crv,curve,alg,hash_cls,coord",
    [
        ("P-521", ec.SECP521R1(), SignatureAlgorithm.es512, hashes.SHA512, 66),
        ("P-256K", ec.SECP256K1(), SignatureAlgorithm.es256_k, hashes.SHA256, 32),
    ],
)
def test_import_ec_key_all_curves(key_client, server, credential, unique_name, crv, curve, alg, hash_cls, coord):
    """P-521 and P-256K keys generated by `cryptography` import (d sent in minimal form, as some
    JWK producers do), sign as that key on the server and verify locally in the SDK."""
    from azure.keyvault.keys.crypto import CryptographyClient

    private = ec.generate_private_key(curve)
    nums = private.private_numbers()
    jwk = JsonWebKey(
        kty=KeyType.ec,
        crv=crv,
        x=nums.public_numbers.x.to_bytes(coord, "big"),
        y=nums.public_numbers.y.to_bytes(coord, "big"),
        d=_int_bytes(nums.private_value),
        key_ops=["sign", "verify"],
    )
    imported = key_client.import_key(unique_name, jwk)
    assert imported.key.crv == crv and imported.key.d is None
    assert imported.key.x == jwk.x and imported.key.y == jwk.y
    digest = hashes.Hash(hash_cls())
    digest.update(b"ec import on " + crv.encode())
    digest = digest.finalize()
    sig = remote_client(imported.id, server, credential).sign(alg, digest).signature
    assert len(sig) == 2 * coord
    der = utils.encode_dss_signature(int.from_bytes(sig[:coord], "big"), int.from_bytes(sig[coord:], "big"))
    private.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(hash_cls())))
    assert CryptographyClient.from_jwk(imported.key).verify(alg, digest, sig).is_valid is True

"""Keys through the official azure-keyvault-keys KeyClient: lifecycle, listing and paging, rotation,
soft delete / recover / purge, backup / restore, random bytes and the errors the SDK raises."""

from __future__ import annotations

import base64
import json

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.keys import (
    KeyCurveName,
    KeyReleasePolicy,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
    KeyType,
)

POLL = {"_polling_interval": 0.1}


def _int_bits(b: bytes) -> int:
    return int.from_bytes(b, "big").bit_length()


@pytest.mark.parametrize("size", [2048, 3072, 4096])
def test_create_rsa_key(key_client, server, unique_name, size):
    key = key_client.create_rsa_key(unique_name, size=size, tags={"purpose": "test"})
    assert key.name == unique_name
    assert key.key_type == KeyType.rsa
    assert _int_bits(key.key.n) == size
    assert int.from_bytes(key.key.e, "big") == 65537
    assert key.key.d is None, "private material must never leave the vault"
    assert key.id.startswith(f"{server.url}/keys/{unique_name}/")
    assert key.properties.version and key.id.endswith(key.properties.version)
    assert key.properties.vault_url == server.url
    assert key.properties.enabled is True
    assert key.properties.tags == {"purpose": "test"}
    assert key.properties.created_on is not None and key.properties.updated_on is not None
    assert key.properties.recoverable_days and key.properties.recoverable_days > 0
    assert key.properties.recovery_level


@pytest.mark.parametrize(("curve", "coord_len"), [(KeyCurveName.p_256, 32), (KeyCurveName.p_384, 48)])
def test_create_ec_key(key_client, unique_name, curve, coord_len):
    key = key_client.create_ec_key(unique_name, curve=curve)
    assert key.key_type == KeyType.ec
    assert key.key.crv == curve
    assert len(key.key.x) == coord_len and len(key.key.y) == coord_len
    assert key.key.d is None


def test_create_oct_key(key_client, unique_name):
    key = key_client.create_oct_key(unique_name, size=256, hardware_protected=True)
    assert key.key_type in (KeyType.oct_hsm, KeyType.oct)
    assert key.key.k is None, "symmetric key material must never leave the vault"
    fetched = key_client.get_key(unique_name)
    assert fetched.id == key.id


def test_get_key_latest_and_by_version(key_client, unique_name):
    v1 = key_client.create_ec_key(unique_name, curve="P-256")
    v2 = key_client.create_ec_key(unique_name, curve="P-256")
    assert v1.properties.version != v2.properties.version
    assert key_client.get_key(unique_name).id == v2.id
    old = key_client.get_key(unique_name, v1.properties.version)
    assert old.id == v1.id
    assert old.key.x == v1.key.x


def test_missing_key_raises_not_found(key_client, unique_name):
    with pytest.raises(ResourceNotFoundError) as e:
        key_client.get_key(unique_name)
    assert e.value.status_code == 404


def test_list_keys_contains_created(key_client, unique_name):
    names = {f"{unique_name}-{i}" for i in range(3)}
    for n in names:
        key_client.create_ec_key(n, curve="P-256")
    listed = {k.name for k in key_client.list_properties_of_keys()}
    assert names <= listed
    for k in key_client.list_properties_of_keys():
        if k.name in names:
            assert k.id.startswith(k.vault_url + "/keys/")
            assert k.enabled is True


def test_key_versions_paging(key_client, unique_name):
    created = [key_client.create_ec_key(unique_name, curve="P-256").properties.version for _ in range(5)]
    pages = [list(p) for p in key_client.list_properties_of_key_versions(unique_name, max_page_size=2).by_page()]
    assert len(pages) >= 3, f"5 versions with maxresults=2 must span at least 3 pages, got {len(pages)}"
    assert all(len(p) <= 2 for p in pages)
    versions = [k.version for p in pages for k in p]
    assert sorted(versions) == sorted(created)
    # Paging over all keys honours maxresults too.
    key_client.create_ec_key(unique_name + "-x", curve="P-256")
    key_pages = [list(p) for p in key_client.list_properties_of_keys(max_page_size=1).by_page()]
    assert len(key_pages) >= 2 and all(len(p) <= 1 for p in key_pages)


def test_update_key_properties(key_client, unique_name):
    key = key_client.create_rsa_key(unique_name, size=2048)
    updated = key_client.update_key_properties(
        unique_name, key.properties.version, enabled=False, tags={"env": "ci"}, key_operations=["encrypt", "decrypt"]
    )
    assert updated.properties.enabled is False
    assert updated.properties.tags == {"env": "ci"}
    assert sorted(updated.key_operations) == ["decrypt", "encrypt"]
    again = key_client.get_key(unique_name)
    assert again.properties.enabled is False
    assert again.properties.tags == {"env": "ci"}
    assert again.properties.updated_on >= key.properties.updated_on


def test_rotate_key(key_client, unique_name):
    key = key_client.create_rsa_key(unique_name, size=2048)
    rotated = key_client.rotate_key(unique_name)
    assert rotated.name == unique_name
    assert rotated.properties.version != key.properties.version
    assert rotated.key.n != key.key.n
    assert rotated.key_type == key.key_type
    assert key_client.get_key(unique_name).properties.version == rotated.properties.version
    versions = {k.version for k in key_client.list_properties_of_key_versions(unique_name)}
    assert versions == {key.properties.version, rotated.properties.version}


def test_rotation_policy_get_set(key_client, unique_name):
    key_client.create_ec_key(unique_name, curve="P-256")
    policy = KeyRotationPolicy(
        expires_in="P90D",
        lifetime_actions=[
            KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P30D"),
            KeyRotationLifetimeAction(KeyRotationPolicyAction.notify, time_before_expiry="P7D"),
        ],
    )
    stored = key_client.update_key_rotation_policy(unique_name, policy)
    assert stored.expires_in == "P90D"
    fetched = key_client.get_key_rotation_policy(unique_name)
    assert fetched.expires_in == "P90D"
    actions = {(getattr(a.action, "value", a.action).lower(), a.time_after_create, a.time_before_expiry) for a in fetched.lifetime_actions}
    assert ("rotate", "P30D", None) in actions
    assert ("notify", None, "P7D") in actions
    assert fetched.id and unique_name in fetched.id


def test_delete_recover_purge_key(key_client, unique_name):
    key = key_client.create_ec_key(unique_name, curve="P-384")
    deleted = key_client.begin_delete_key(unique_name, **POLL).result()
    assert deleted.name == unique_name
    assert deleted.recovery_id and unique_name in deleted.recovery_id
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    assert deleted.scheduled_purge_date > deleted.deleted_date
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(unique_name)
    assert key_client.get_deleted_key(unique_name).id == key.id
    assert unique_name in {k.name for k in key_client.list_deleted_keys()}

    recovered = key_client.begin_recover_deleted_key(unique_name, **POLL).result()
    assert recovered.id == key.id
    assert key_client.get_key(unique_name).key.x == key.key.x
    with pytest.raises(ResourceNotFoundError):
        key_client.get_deleted_key(unique_name)

    key_client.begin_delete_key(unique_name, **POLL).result()
    key_client.purge_deleted_key(unique_name)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_deleted_key(unique_name)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(unique_name)
    assert unique_name not in {k.name for k in key_client.list_deleted_keys()}


def test_backup_restore_key_after_purge(key_client, server, credential, unique_name):
    from azure.keyvault.keys.crypto import CryptographyClient, EncryptionAlgorithm

    key = key_client.create_rsa_key(unique_name, size=2048)
    crypto = CryptographyClient(key, credential, **server.client_kwargs())
    ciphertext = crypto.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"survives backup").ciphertext
    blob = key_client.backup_key(unique_name)
    assert isinstance(blob, bytes) and len(blob) > 0
    assert b"survives backup" not in blob

    key_client.begin_delete_key(unique_name, **POLL).result()
    key_client.purge_deleted_key(unique_name)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(unique_name)

    restored = key_client.restore_key_backup(blob)
    assert restored.id == key.id
    assert restored.key.n == key.key.n
    # The restored key is the same private key: it decrypts what the original encrypted.
    remote = CryptographyClient(restored.id, credential, **server.client_kwargs())
    assert remote.decrypt(EncryptionAlgorithm.rsa_oaep_256, ciphertext).plaintext == b"survives backup"

    # Restoring over an existing key is refused.
    with pytest.raises(HttpResponseError) as e:
        key_client.restore_key_backup(blob)
    assert e.value.status_code in (400, 409)


def test_restore_rejects_garbage(key_client):
    with pytest.raises(HttpResponseError) as e:
        key_client.restore_key_backup(b"not a backup blob at all")
    assert e.value.status_code == 400


def test_random_bytes(key_client):
    a = key_client.get_random_bytes(32)
    b = key_client.get_random_bytes(32)
    assert isinstance(a, bytes) and len(a) == 32 and len(b) == 32
    assert a != b
    assert len(key_client.get_random_bytes(1)) == 1


def test_exportable_key_without_release_policy_rejected(key_client, unique_name):
    with pytest.raises(HttpResponseError) as e:
        key_client.create_rsa_key(unique_name, size=2048, exportable=True, hardware_protected=True)
    assert e.value.status_code == 400
    assert "AKV.SKR.1004" in str(e.value)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(unique_name)


def test_exportable_key_with_release_policy(key_client, unique_name):
    policy = {
        "version": "1.0.0",
        "anyOf": [
            {
                "authority": "https://attest.example.invalid",
                "allOf": [{"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"}],
            }
        ],
    }
    key = key_client.create_rsa_key(
        unique_name,
        size=2048,
        exportable=True,
        hardware_protected=True,
        release_policy=KeyReleasePolicy(json.dumps(policy).encode()),
    )
    assert key.properties.exportable is True
    rp = key.properties.release_policy
    assert rp is not None
    assert json.loads(rp.encoded_policy) == policy


def test_disabled_key_is_forbidden(key_client, server, credential, unique_name):
    from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm

    key = key_client.create_ec_key(unique_name, curve="P-256")
    key_client.update_key_properties(unique_name, enabled=False)
    crypto = CryptographyClient(key.id, credential, **server.client_kwargs())
    with pytest.raises(HttpResponseError) as e:
        crypto.sign(SignatureAlgorithm.es256, b"\x00" * 32)
    assert e.value.status_code == 403


def test_wrong_algorithm_is_bad_request(key_client, server, credential, unique_name):
    from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm

    key = key_client.create_ec_key(unique_name, curve="P-256")
    crypto = CryptographyClient(key.id, credential, **server.client_kwargs())
    with pytest.raises(HttpResponseError) as e:
        crypto.sign(SignatureAlgorithm.rs256, b"\x00" * 32)  # an RSA algorithm on an EC key
    assert e.value.status_code == 400


def test_unauthenticated_request_gets_challenge(server):
    """The SDK's handshake: a bare request gets 401 with a Bearer challenge naming authorization and resource."""
    import requests

    r = requests.get(f"{server.url}/keys?api-version=7.6", verify=server.ca, timeout=10)
    assert r.status_code == 401
    challenge = r.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer ")
    assert "authorization=" in challenge and "resource=" in challenge


def test_bad_token_rejected(server):
    from azure.keyvault.keys import KeyClient

    from conftest import StaticTokenCredential

    bad = StaticTokenCredential("not-a-valid-token-" + base64.urlsafe_b64encode(b"x" * 24).decode())
    with KeyClient(server.url, bad, **server.client_kwargs()) as client:
        with pytest.raises(HttpResponseError) as e:
            client.get_key("anything")
    assert e.value.status_code == 401


@pytest.mark.parametrize("api_version", ["7.0", "7.4", "7.6", "2025-07-01", "2099-12-31"])
def test_api_versions_accepted(server, credential, unique_name, api_version):
    """Old, current and not-yet-known api-versions all work (emulators that reject new versions
    break with every SDK release)."""
    from azure.core.rest import HttpRequest
    from azure.keyvault.keys import KeyClient

    with KeyClient(server.url, credential, **server.client_kwargs()) as client:
        client.create_ec_key(unique_name, curve="P-256")
        response = client.send_request(HttpRequest("GET", f"/keys/{unique_name}?api-version={api_version}"))
    assert response.status_code == 200, response.text()
    assert response.json()["key"]["kid"].startswith(f"{server.url}/keys/{unique_name}/")


@pytest.mark.parametrize("api_version", ["7.3", "7.5"])
def test_sdk_with_older_api_version(server, credential, unique_name, api_version):
    from azure.keyvault.keys import KeyClient

    with KeyClient(server.url, credential, api_version=api_version, **server.client_kwargs()) as client:
        key = client.create_rsa_key(unique_name, size=2048)
        assert client.get_key(unique_name).id == key.id


def test_release_rejects_bad_attestation(key_client, unique_name):
    """Secure key release through the SDK (`POST /keys/{name}//release` when unversioned): a target
    that is not a valid attestation token from a trusted issuer releases nothing."""
    policy = {
        "version": "1.0.0",
        "anyOf": [{"authority": "https://attest.example.invalid", "allOf": [{"claim": "x", "equals": "y"}]}],
    }
    key_client.create_rsa_key(
        unique_name,
        size=2048,
        exportable=True,
        hardware_protected=True,
        release_policy=KeyReleasePolicy(json.dumps(policy).encode()),
    )
    for target in ("not-a-jwt", "eyJhbGciOiJub25lIn0.eyJ4IjoieSJ9."):
        with pytest.raises(HttpResponseError) as e:
            key_client.release_key(unique_name, target)
        assert e.value.status_code in (400, 401, 403), e.value
    # A key that is not exportable is never released.
    key_client.create_ec_key(unique_name + "-ne", curve="P-256")
    with pytest.raises(HttpResponseError) as e:
        key_client.release_key(unique_name + "-ne", "not-a-jwt")
    assert e.value.status_code in (400, 403)

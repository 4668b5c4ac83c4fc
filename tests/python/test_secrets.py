"""Secrets through the official azure-keyvault-secrets SecretClient."""

from __future__ import annotations

import base64
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

POLL = {"_polling_interval": 0.1}


def test_set_get_secret(secret_client, server, unique_name):
    s = secret_client.set_secret(unique_name, "p@ssw0rd \u00e9\u00e8 \n multi-line", content_type="text/plain",
                                 tags={"team": "payments"})
    assert s.name == unique_name
    assert s.value == "p@ssw0rd \u00e9\u00e8 \n multi-line"
    assert s.id.startswith(f"{server.url}/secrets/{unique_name}/")
    assert s.properties.version and s.id.endswith(s.properties.version)
    assert s.properties.content_type == "text/plain"
    assert s.properties.tags == {"team": "payments"}
    assert s.properties.enabled is True
    assert s.properties.created_on is not None
    got = secret_client.get_secret(unique_name)
    assert got.value == s.value and got.id == s.id
    assert got.properties.content_type == "text/plain"


def test_secret_versions(secret_client, unique_name):
    versions = [secret_client.set_secret(unique_name, f"value-{i}") for i in range(4)]
    assert len({v.properties.version for v in versions}) == 4
    assert secret_client.get_secret(unique_name).value == "value-3"
    for i, v in enumerate(versions):
        assert secret_client.get_secret(unique_name, v.properties.version).value == f"value-{i}"
    pages = [list(p) for p in secret_client.list_properties_of_secret_versions(unique_name, max_page_size=3).by_page()]
    assert len(pages) >= 2 and all(len(p) <= 3 for p in pages)
    listed = {p.version for page in pages for p in page}
    assert listed == {v.properties.version for v in versions}
    # Listing never returns values.
    for page in pages:
        for props in page:
            assert not hasattr(props, "value")


def test_list_secrets(secret_client, unique_name):
    names = {f"{unique_name}-{i}" for i in range(3)}
    for n in names:
        secret_client.set_secret(n, "x", content_type="application/x-test")
    listed = {p.name: p for p in secret_client.list_properties_of_secrets()}
    assert names <= set(listed)
    assert all(listed[n].content_type == "application/x-test" for n in names)


def test_update_and_disable_secret(secret_client, unique_name):
    s = secret_client.set_secret(unique_name, "hidden")
    props = secret_client.update_secret_properties(
        unique_name, s.properties.version, enabled=False, content_type="text/x-updated", tags={"a": "b"}
    )
    assert props.enabled is False
    assert props.content_type == "text/x-updated"
    assert props.tags == {"a": "b"}
    with pytest.raises(HttpResponseError) as e:
        secret_client.get_secret(unique_name)
    assert e.value.status_code == 403
    secret_client.update_secret_properties(unique_name, s.properties.version, enabled=True)
    assert secret_client.get_secret(unique_name).value == "hidden"


def test_missing_secret_raises_not_found(secret_client, unique_name):
    with pytest.raises(ResourceNotFoundError) as e:
        secret_client.get_secret(unique_name)
    assert e.value.status_code == 404


def test_delete_recover_purge_secret(secret_client, unique_name):
    s = secret_client.set_secret(unique_name, "to be deleted")
    deleted = secret_client.begin_delete_secret(unique_name, **POLL).result()
    assert deleted.name == unique_name
    assert deleted.recovery_id and deleted.deleted_date and deleted.scheduled_purge_date
    with pytest.raises(ResourceNotFoundError):
        secret_client.get_secret(unique_name)
    assert secret_client.get_deleted_secret(unique_name).id == s.id
    assert unique_name in {d.name for d in secret_client.list_deleted_secrets()}
    recovered = secret_client.begin_recover_deleted_secret(unique_name, **POLL).result()
    assert recovered.id == s.id
    assert secret_client.get_secret(unique_name).value == "to be deleted"

    secret_client.begin_delete_secret(unique_name, **POLL).result()
    secret_client.purge_deleted_secret(unique_name)
    with pytest.raises(ResourceNotFoundError):
        secret_client.get_deleted_secret(unique_name)
    # The name is free again after purge.
    assert secret_client.set_secret(unique_name, "reborn").value == "reborn"


def test_backup_restore_secret_after_purge(secret_client, unique_name):
    first = secret_client.set_secret(unique_name, "v1", content_type="text/plain")
    marker = "plaintext-marker-" + uuid.uuid4().hex
    second = secret_client.set_secret(unique_name, marker)
    blob = secret_client.backup_secret(unique_name)
    assert isinstance(blob, bytes) and blob
    # The backup is a protected blob: the secret value appears in it neither raw nor base64-encoded.
    assert marker.encode() not in blob
    for shift in range(3):  # every alignment of the marker inside a base64-encoded document
        assert base64.b64encode(marker[shift:].encode())[:24] not in blob
        assert base64.urlsafe_b64encode(marker[shift:].encode())[:24] not in blob
    secret_client.begin_delete_secret(unique_name, **POLL).result()
    secret_client.purge_deleted_secret(unique_name)
    with pytest.raises(ResourceNotFoundError):
        secret_client.get_secret(unique_name)
    restored = secret_client.restore_secret_backup(blob)
    assert restored.name == unique_name
    assert secret_client.get_secret(unique_name).value == marker
    # All versions come back.
    assert secret_client.get_secret(unique_name, first.properties.version).value == "v1"
    assert secret_client.get_secret(unique_name, second.properties.version).id == second.id


def test_secret_restore_rejects_garbage(secret_client):
    with pytest.raises(HttpResponseError) as e:
        secret_client.restore_secret_backup(b"\x00garbage")
    assert e.value.status_code == 400

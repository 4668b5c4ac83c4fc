"""azure-identity credentials against Enclava's token endpoints, and role-based access with the
tokens they obtain: ClientSecretCredential (client credentials at /{tenant}/oauth2/v2.0/token) and
ManagedIdentityCredential (the IMDS-style /metadata/identity/oauth2/token)."""

from __future__ import annotations

import uuid

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
from azure.keyvault.secrets import SecretClient

MI_ENV = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_CLIENT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
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
    assert r.status_code in (200, 201, 204), f"{method} {path} -> {r.status_code}: {r.text}"
    return r.json() if r.content else {}


def _principal(server, kind: str, role: str | None) -> dict:
    created = _admin(server, "POST", "/enclava/principals", {"kind": kind, "display_name": f"py-{uuid.uuid4().hex[:8]}"})
    assert created["client_id"]
    if role:
        assignment = _admin(server, "POST", "/enclava/role-assignments", {"principal": created["client_id"], "role": role})
        assert assignment
    return created


@pytest.fixture
def clean_identity_env(monkeypatch):
    for name in MI_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_client_secret_credential_with_secrets_user_role(server, secret_client, unique_name):
    secret_client.set_secret(unique_name, "readable by the service principal")
    sp = _principal(server, "service_principal", "SecretsUser")
    cred = ClientSecretCredential(
        "enclava-test-tenant",
        sp["client_id"],
        sp["client_secret"],
        authority=server.url,
        disable_instance_discovery=True,
        connection_verify=server.ca,
    )
    token = cred.get_token("https://vault.azure.net/.default")
    assert token.token and token.expires_on > 0

    with SecretClient(server.url, cred, **server.client_kwargs()) as client:
        assert client.get_secret(unique_name).value == "readable by the service principal"
        # SecretsUser reads but cannot write.
        with pytest.raises(HttpResponseError) as e:
            client.set_secret(unique_name, "overwritten")
        assert e.value.status_code == 403
    assert secret_client.get_secret(unique_name).value == "readable by the service principal"


def test_client_secret_credential_crypto_user_role(server, key_client, unique_name):
    key = key_client.create_ec_key(unique_name, curve="P-256")
    sp = _principal(server, "service_principal", "CryptoUser")
    cred = ClientSecretCredential(
        "enclava-test-tenant",
        sp["client_id"],
        sp["client_secret"],
        authority=server.url,
        disable_instance_discovery=True,
        connection_verify=server.ca,
    )
    crypto = CryptographyClient(key.id, cred, **server.client_kwargs())
    assert len(crypto.sign(SignatureAlgorithm.es256, b"\x07" * 32).signature) == 64
    with KeyClient(server.url, cred, **server.client_kwargs()) as client:
        with pytest.raises(HttpResponseError) as e:
            client.create_ec_key(unique_name + "-new", curve="P-256")
        assert e.value.status_code == 403


def test_principal_without_role_is_denied(server, unique_name):
    sp = _principal(server, "service_principal", None)
    cred = ClientSecretCredential(
        "enclava-test-tenant",
        sp["client_id"],
        sp["client_secret"],
        authority=server.url,
        disable_instance_discovery=True,
        connection_verify=server.ca,
    )
    with SecretClient(server.url, cred, **server.client_kwargs()) as client:
        with pytest.raises(HttpResponseError) as e:
            client.get_secret(unique_name)
        assert e.value.status_code == 403


def test_client_secret_credential_wrong_secret(server):
    sp = _principal(server, "service_principal", "SecretsUser")
    cred = ClientSecretCredential(
        "enclava-test-tenant",
        sp["client_id"],
        "definitely-not-the-secret",
        authority=server.url,
        disable_instance_discovery=True,
        connection_verify=server.ca,
    )
    with pytest.raises(ClientAuthenticationError):
        cred.get_token("https://vault.azure.net/.default")


def test_managed_identity_pod_identity_host(server, secret_client, clean_identity_env, unique_name):
    """IMDS-style flow: AZURE_POD_IDENTITY_AUTHORITY_HOST points the credential at the server.

    The IMDS request carries no credential of its own, so the workload presents its identity secret
    as the X-IDENTITY-HEADER header (azure-core's standard `headers` pipeline option)."""
    secret_client.set_secret(unique_name, "for the managed identity")
    mi = _principal(server, "managed_identity", "SecretsUser")
    clean_identity_env.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url)
    cred = ManagedIdentityCredential(connection_verify=server.ca, headers={"X-IDENTITY-HEADER": mi["identity_secret"]})
    token = cred.get_token("https://vault.azure.net/.default")
    assert token.token
    with SecretClient(server.url, cred, **server.client_kwargs()) as client:
        assert client.get_secret(unique_name).value == "for the managed identity"


def test_managed_identity_pod_identity_without_secret_is_unavailable(server, clean_identity_env):
    """Without the identity secret the IMDS-style request cannot name a workload: the server answers
    400 with an explanation, which azure-identity reports as CredentialUnavailableError."""
    from azure.identity import CredentialUnavailableError

    clean_identity_env.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url)
    cred = ManagedIdentityCredential(connection_verify=server.ca)
    with pytest.raises(CredentialUnavailableError) as e:
        cred.get_token("https://vault.azure.net/.default")
    assert "X-IDENTITY-HEADER" in str(e.value)


def test_managed_identity_app_service_style(server, secret_client, clean_identity_env, unique_name):
    """IDENTITY_ENDPOINT / IDENTITY_HEADER flow (App Service, Container Apps, Functions)."""
    secret_client.set_secret(unique_name, "app service style")
    mi = _principal(server, "managed_identity", "SecretsUser")
    clean_identity_env.setenv("IDENTITY_ENDPOINT", f"{server.url}/metadata/identity/oauth2/token")
    clean_identity_env.setenv("IDENTITY_HEADER", mi["identity_secret"])
    cred = ManagedIdentityCredential(connection_verify=server.ca)
    with SecretClient(server.url, cred, **server.client_kwargs()) as client:
        assert client.get_secret(unique_name).value == "app service style"


def test_managed_identity_wrong_secret(server, clean_identity_env):
    clean_identity_env.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url)
    cred = ManagedIdentityCredential(connection_verify=server.ca, headers={"X-IDENTITY-HEADER": "not-a-real-secret"})
    with pytest.raises((ClientAuthenticationError, HttpResponseError)):
        cred.get_token("https://vault.azure.net/.default")


def test_imds_endpoint_shape(server):
    """The raw IMDS answer has the fields azure-identity and MSAL read."""
    mi = _principal(server, "managed_identity", None)
    r = requests.get(
        f"{server.url}/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
        headers={"Metadata": "true", "X-IDENTITY-HEADER": mi["identity_secret"]},
        verify=server.ca,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    for field in ("access_token", "expires_in", "expires_on", "resource", "token_type"):
        assert field in body, f"missing {field}: {sorted(body)}"
    assert body["token_type"] == "Bearer"
    assert int(body["expires_in"]) > 0

"""Key Vault certificates through Microsoft's unmodified `azure-keyvault-certificates` SDK (default
options) against a real `enclava server --dev` (issue 12 acceptance).

Everything the SDK returns is checked independently of Enclava's code with `cryptography`: the
certificate DER, the PFX/PEM the certificate's secret returns (its private key must match the
certificate's public key), chains verified to the Enclava issuing CA fetched from the server's CA
route (never the server's own TLS CA), and CSRs signed here by a test CA made with `cryptography`.
"""

from __future__ import annotations

import base64
import datetime
import time
import uuid

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.certificates import (
    AdministratorContact,
    CertificateClient,
    CertificateContact,
    CertificateContentType,
    CertificateOperation,
    CertificatePolicy,
    CertificatePolicyAction,
    KeyCurveName,
    KeyType,
    KeyVaultCertificate,
    LifetimeAction,
)
from azure.keyvault.keys.crypto import SignatureAlgorithm
from azure.keyvault.secrets import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import remote_client

# The Enclava issuing CA's certificate (public, PEM). Served so clients can trust what it issues.
CA_ROUTE = "/enclava/certificates/ca"
PFX = CertificateContentType.pkcs12
PEM = CertificateContentType.pem


# ---------------------------------------------------------------------------------------------------
# Helpers (all checks here are independent of the server's code)
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert_client(server, credential):
    with CertificateClient(server.url, credential, **server.client_kwargs()) as client:
        yield client


@pytest.fixture(scope="module")
def enclava_ca(server) -> x509.Certificate:
    """The Enclava issuing CA certificate from the server's public CA route (no credentials)."""
    r = requests.get(f"{server.url}{CA_ROUTE}", verify=server.ca, timeout=30)
    assert r.status_code == 200, f"GET {CA_ROUTE} -> {r.status_code}: {r.text}"
    certs = x509.load_pem_x509_certificates(r.content)
    ca = certs[0]
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is True
    assert "Enclava Certificate Issuing CA" in ca.subject.rfc4514_string()
    # SECURITY: it is not the server's TLS CA (that would let a Certificates Officer issue a
    # certificate for the vault's own host name).
    tls_ca = x509.load_pem_x509_certificate(open(server.ca, "rb").read())
    assert ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != tls_ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ca


def spki(obj) -> bytes:
    """SubjectPublicKeyInfo DER of a certificate, CSR, public or private key."""
    if hasattr(obj, "public_key"):
        obj = obj.public_key()
    return obj.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem_body(cert: x509.Certificate) -> bytes:
    """The base64 body of a PEM certificate (no header lines, no newlines): what Microsoft's SDK
    documentation passes to merge_certificate."""
    lines = cert.public_bytes(serialization.Encoding.PEM).decode().strip().splitlines()
    return "".join(lines[1:-1]).encode()


def sdk_cert(c: KeyVaultCertificate) -> x509.Certificate:
    assert c.cer, "the certificate bundle carries cer"
    return x509.load_der_x509_certificate(bytes(c.cer))


def dns_names(cert) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


def cn(cert) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def open_pfx_secret(secret) -> tuple:
    """A certificate secret with content type PKCS#12: base64 PFX without password."""
    assert secret.properties.content_type == "application/x-pkcs12"
    key, leaf, chain = pkcs12.load_key_and_certificates(base64.b64decode(secret.value), None)
    return key, leaf, chain


def open_pem_secret(secret) -> tuple:
    """A certificate secret with content type PEM: PKCS#8 PRIVATE KEY + the chain, leaf first."""
    assert secret.properties.content_type == "application/x-pem-file"
    text = secret.value.encode()
    assert b"-----BEGIN PRIVATE KEY-----" in text, "PKCS#8 private key"
    key = serialization.load_pem_private_key(text, password=None)
    certs = x509.load_pem_x509_certificates(text)
    return key, certs[0], certs[1:]


def verify_chain(leaf: x509.Certificate, intermediates: list, root: x509.Certificate, host: str) -> None:
    """Verify leaf -> root as a TLS client would (RFC 5280 path building + host name)."""
    from cryptography.x509.verification import PolicyBuilder, Store

    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(host))
    path = verifier.verify(leaf, [c for c in intermediates if c != root])
    assert path[0] == leaf and path[-1] == root


def check_key_matches(private_key, cert: x509.Certificate) -> None:
    """The private key belongs to the certificate: same public key, and a signature verifies."""
    assert spki(private_key) == spki(cert)
    msg = b"enclava certificate key check"
    if isinstance(private_key, rsa.RSAPrivateKey):
        sig = private_key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
        cert.public_key().verify(sig, msg, padding.PKCS1v15(), hashes.SHA256())
    else:
        sig = private_key.sign(msg, ec.ECDSA(hashes.SHA256()))
        cert.public_key().verify(sig, msg, ec.ECDSA(hashes.SHA256()))


def status(e: pytest.ExceptionInfo) -> int:
    return e.value.status_code


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


def principal_credential(server, role: str) -> ClientSecretCredential:
    """A new service principal holding only `role` (Azure built-in names parse), as azure-identity sees it."""
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


class ExternalCA:
    """A certificate authority made here with `cryptography` (for the CSR flow and the imports)."""

    def __init__(self, name: str = "Enclava pytest external CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, public_key, subject: x509.Name, hosts: list[str], lifetime=datetime.timedelta(days=10)):
        now = datetime.datetime.now(datetime.timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def leaf(self, host: str, key=None, lifetime=datetime.timedelta(days=10)):
        key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        return key, self.issue(key.public_key(), subject, [host], lifetime)


def self_signed(host: str, key, lifetime: datetime.timedelta) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )


def names_of_versions(client: CertificateClient, name: str) -> set[str]:
    return {p.version for p in client.list_properties_of_certificate_versions(name)}


# ---------------------------------------------------------------------------------------------------
# Create (Self, Enclava) and download through the secret
# ---------------------------------------------------------------------------------------------------


def test_create_self_signed_and_download_pfx(cert_client, secret_client, key_client, server, credential, unique_name):
    host = f"{unique_name}.example"
    policy = CertificatePolicy(issuer_name="Self", subject=f"CN={host}, O=Enclava Tests", san_dns_names=[host])
    created = cert_client.begin_create_certificate(unique_name, policy).result()
    assert isinstance(created, KeyVaultCertificate), created
    version = created.properties.version
    assert created.id == f"{server.url}/certificates/{unique_name}/{version}"
    assert created.key_id == f"{server.url}/keys/{unique_name}/{version}"
    assert created.secret_id == f"{server.url}/secrets/{unique_name}/{version}"

    leaf = sdk_cert(created)
    assert cn(leaf) == host
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Enclava Tests"
    assert dns_names(leaf) == [host]
    # Self-signed by its own key.
    assert leaf.issuer == leaf.subject
    leaf.verify_directly_issued_by(leaf)
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey) and leaf.public_key().key_size == 2048
    assert created.properties.x509_thumbprint == leaf.fingerprint(hashes.SHA1())
    assert created.properties.expires_on == leaf.not_valid_after_utc
    assert created.properties.not_before == leaf.not_valid_before_utc
    # Key Vault's defaults: 12 months, exportable RSA 2048, PKCS#12, AutoRenew at 80 % lifetime.
    assert 360 <= (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 367
    p = created.policy
    assert p is not None, "the latest version includes its policy"
    assert p.issuer_name == "Self"
    assert p.key_type == KeyType.rsa and p.key_size == 2048 and p.exportable is True and p.reuse_key is False
    assert p.content_type == PFX
    assert p.validity_in_months == 12
    assert [(a.action, a.lifetime_percentage) for a in p.lifetime_actions] == [(CertificatePolicyAction.auto_renew, 80)]

    got = cert_client.get_certificate(unique_name)
    assert got.id == created.id and bytes(got.cer) == der(leaf)
    assert bytes(cert_client.get_certificate_version(unique_name, version).cer) == der(leaf)

    # The secret of the same name and version: base64 PFX without password, key matches the cert.
    secret = secret_client.get_secret(unique_name)
    assert secret.id == created.secret_id
    assert secret.properties.managed is True
    assert secret.properties.key_id == created.key_id
    key, pfx_leaf, _ = open_pfx_secret(secret)
    assert der(pfx_leaf) == der(leaf)
    check_key_matches(key, leaf)

    # The key of the same name and version does crypto; its signature verifies with the certificate.
    k = key_client.get_key(unique_name)
    assert k.id == created.key_id and k.properties.managed is True
    assert int.from_bytes(k.key.n, "big") == leaf.public_key().public_numbers().n
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"signed by the certificate's key")
    d = digest.finalize()
    sig = remote_client(created.key_id, server, credential).sign(SignatureAlgorithm.rs256, d).signature
    leaf.public_key().verify(sig, b"signed by the certificate's key", padding.PKCS1v15(), hashes.SHA256())

    # Managed key and secret are read-only through /keys and /secrets (403 naming the certificate).
    with pytest.raises(HttpResponseError) as e:
        secret_client.set_secret(unique_name, "overwrite the certificate's secret")
    assert status(e) == 403 and unique_name in e.value.message and "certificate" in e.value.message.lower()
    with pytest.raises(HttpResponseError) as e:
        key_client.begin_delete_key(unique_name).result()
    assert status(e) == 403
    with pytest.raises(HttpResponseError) as e:
        secret_client.begin_delete_secret(unique_name).result()
    assert status(e) == 403
    assert secret_client.get_secret(unique_name).value == secret.value


def test_create_enclava_issued_pfx_chain_verifies(cert_client, secret_client, enclava_ca, server, unique_name):
    host = f"{unique_name}.svc.example"
    policy = CertificatePolicy(
        issuer_name="Enclava",
        subject=f"CN={host}",
        san_dns_names=[host, f"www.{host}"],
        key_type=KeyType.rsa,
        key_size=3072,
        enhanced_key_usage=["1.3.6.1.5.5.7.3.1"],
        validity_in_months=3,
    )
    poller = cert_client.begin_create_certificate(unique_name, policy)
    created = poller.result()
    assert poller.done() and isinstance(created, KeyVaultCertificate), created
    op = cert_client.get_certificate_operation(unique_name)
    assert op.status.lower() == "completed" and op.issuer_name == "Enclava"
    assert op.target.startswith(f"{server.url}/certificates/{unique_name}")
    leaf = sdk_cert(created)
    assert leaf.issuer == enclava_ca.subject
    leaf.verify_directly_issued_by(enclava_ca)
    assert dns_names(leaf) == [host, f"www.{host}"]
    assert leaf.public_key().key_size == 3072
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert 88 <= (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 93

    key, pfx_leaf, chain = open_pfx_secret(secret_client.get_secret(unique_name))
    assert der(pfx_leaf) == der(leaf)
    check_key_matches(key, leaf)
    verify_chain(pfx_leaf, chain, enclava_ca, host)
    verify_chain(pfx_leaf, chain, enclava_ca, f"www.{host}")
    # The server's TLS CA does not vouch for it.
    tls_ca = x509.load_pem_x509_certificate(open(server.ca, "rb").read())
    from cryptography.x509.verification import VerificationError

    with pytest.raises(VerificationError):
        verify_chain(pfx_leaf, chain, tls_ca, host)
    # Nor does the Enclava CA vouch for another host name.
    with pytest.raises(VerificationError):
        verify_chain(pfx_leaf, chain, enclava_ca, "vault.example")


def test_create_enclava_issued_ec_pem(cert_client, secret_client, enclava_ca, unique_name):
    host = f"{unique_name}.pem.example"
    policy = CertificatePolicy(
        issuer_name="Enclava",
        subject=f"CN={host}",
        san_dns_names=[host],
        key_type=KeyType.ec,
        key_curve_name=KeyCurveName.p_256,
        content_type=PEM,
    )
    created = cert_client.begin_create_certificate(unique_name, policy).result()
    leaf = sdk_cert(created)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) and leaf.public_key().curve.name == "secp256r1"
    assert created.policy.key_type == KeyType.ec and created.policy.key_curve_name == KeyCurveName.p_256
    assert created.policy.content_type == PEM
    key, pem_leaf, rest = open_pem_secret(secret_client.get_secret(unique_name))
    assert der(pem_leaf) == der(leaf)
    check_key_matches(key, leaf)
    verify_chain(pem_leaf, rest, enclava_ca, host)


def test_create_ec_p384_self_signed(cert_client, secret_client, unique_name):
    policy = CertificatePolicy(
        issuer_name="Self", subject=f"CN={unique_name}", key_type=KeyType.ec, key_curve_name=KeyCurveName.p_384
    )
    created = cert_client.begin_create_certificate(unique_name, policy).result()
    leaf = sdk_cert(created)
    assert leaf.public_key().curve.name == "secp384r1"
    key, _, _ = open_pfx_secret(secret_client.get_secret(unique_name))
    check_key_matches(key, leaf)


def test_create_rejects_reserved_names_and_bad_policies(cert_client, unique_name):
    for reserved in ("issuers", "contacts"):
        with pytest.raises(HttpResponseError) as e:
            cert_client.begin_create_certificate(reserved, CertificatePolicy.get_default()).result()
        assert status(e) == 400, reserved
    bad = [
        CertificatePolicy(issuer_name="Self", subject="CN=x", key_type=KeyType.rsa, key_size=1024),
        CertificatePolicy(issuer_name="Self", subject="CN=x", key_type=KeyType.ec, key_curve_name="P-192"),
        CertificatePolicy(issuer_name="Self", subject="not a distinguished name"),
        CertificatePolicy(issuer_name="Self", subject="CN=x", validity_in_months=0),
    ]
    for policy in bad:
        with pytest.raises(HttpResponseError) as e:
            cert_client.begin_create_certificate(unique_name, policy).result()
        assert status(e) == 400, (policy.key_size, policy.key_curve_name, policy.subject)
        assert e.value.error is not None and e.value.error.code
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_certificate(unique_name)


# ---------------------------------------------------------------------------------------------------
# Import PFX (with password, modern and legacy encryption) and PEM
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["pbes2-aes", "pbe-sha1-3des"])
def test_import_pfx_with_password(cert_client, secret_client, unique_name, legacy):
    ca = ExternalCA()
    key, leaf = ca.leaf(f"{unique_name}.import.example")
    if legacy:
        enc = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(b"import-pw")
        )
    else:
        enc = serialization.BestAvailableEncryption(b"import-pw")
    pfx = pkcs12.serialize_key_and_certificates(b"friendly", key, leaf, [ca.cert], enc)

    # A wrong password is a clear 400 and writes nothing.
    with pytest.raises(HttpResponseError) as e:
        cert_client.import_certificate(unique_name, pfx, password="wrong-pw")
    assert status(e) == 400
    assert "import-pw" not in e.value.message
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_certificate(unique_name)

    imported = cert_client.import_certificate(unique_name, pfx, password="import-pw", tags={"src": "pfx"})
    assert bytes(imported.cer) == der(leaf)
    assert imported.properties.tags == {"src": "pfx"}
    assert imported.policy.issuer_name == "Unknown"
    assert cn(leaf) in imported.policy.subject
    got_key, got_leaf, chain = open_pfx_secret(secret_client.get_secret(unique_name))
    assert der(got_leaf) == der(leaf)
    assert [der(c) for c in chain] == [der(ca.cert)]
    check_key_matches(got_key, leaf)
    verify_chain(got_leaf, chain, ca.cert, f"{unique_name}.import.example")


def test_import_pem_pkcs8_and_sec1(cert_client, secret_client, unique_name):
    ca = ExternalCA()
    # RSA key as PKCS#8, chain leaf first, with RFC 7468 explanatory text before the blocks.
    key, leaf = ca.leaf(f"{unique_name}.pem.example")
    pem = (
        b"Subject: my service\n"
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + leaf.public_bytes(serialization.Encoding.PEM)
        + ca.cert.public_bytes(serialization.Encoding.PEM)
    )
    imported = cert_client.import_certificate(unique_name, pem, policy=CertificatePolicy(content_type=PEM))
    assert bytes(imported.cer) == der(leaf)
    got_key, got_leaf, rest = open_pem_secret(secret_client.get_secret(unique_name))
    assert der(got_leaf) == der(leaf) and [der(c) for c in rest] == [der(ca.cert)]
    check_key_matches(got_key, leaf)

    # An EC key in SEC1 ("EC PRIVATE KEY").
    ec_key = ec.generate_private_key(ec.SECP384R1())
    _, ec_leaf = ca.leaf(f"{unique_name}-ec.pem.example", key=ec_key)
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ) + ec_leaf.public_bytes(serialization.Encoding.PEM)
    assert b"BEGIN EC PRIVATE KEY" in pem
    imported = cert_client.import_certificate(unique_name + "-ec", pem, policy=CertificatePolicy(content_type=PEM))
    assert bytes(imported.cer) == der(ec_leaf)
    got_key, _, _ = open_pem_secret(secret_client.get_secret(unique_name + "-ec"))
    check_key_matches(got_key, ec_leaf)


def test_import_rejects_bad_input(cert_client, unique_name):
    ca = ExternalCA()
    key, leaf = ca.leaf("mismatch.example")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem_policy = CertificatePolicy(content_type=PEM)
    cases = {
        "garbage pfx": (b"\x30\x82garbage", None),
        "key does not match the leaf": (
            other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            + leaf.public_bytes(serialization.Encoding.PEM),
            pem_policy,
        ),
        "certificate without key": (leaf.public_bytes(serialization.Encoding.PEM), pem_policy),
        "truncated pem": (
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())[:80],
            pem_policy,
        ),
    }
    for what, (value, policy) in cases.items():
        with pytest.raises(HttpResponseError) as e:
            cert_client.import_certificate(unique_name, value, policy=policy)
        assert status(e) == 400, what
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_certificate(unique_name)


# ---------------------------------------------------------------------------------------------------
# CSR flow (issuer Unknown) and the pending operation
# ---------------------------------------------------------------------------------------------------


def test_csr_sign_and_merge(cert_client, secret_client, unique_name):
    host = f"{unique_name}.csr.example"
    policy = CertificatePolicy(issuer_name="Unknown", subject=f"CN={host}", san_dns_names=[host])
    op = cert_client.begin_create_certificate(unique_name, policy).result()
    assert isinstance(op, CertificateOperation), op
    assert op.status.lower() == "inprogress" and op.issuer_name == "Unknown"
    assert op.csr
    again = cert_client.get_certificate_operation(unique_name)
    assert bytes(again.csr) == bytes(op.csr)
    csr = x509.load_der_x509_csr(bytes(op.csr))
    assert csr.is_signature_valid
    assert cn(csr) == host
    assert dns_names(csr) == [host]

    ca = ExternalCA()
    # A certificate for another key is refused (400) and the operation stays pending.
    _, wrong = ca.leaf(host)
    with pytest.raises(HttpResponseError) as e:
        cert_client.merge_certificate(unique_name, [pem_body(wrong)])
    assert status(e) == 400
    assert cert_client.get_certificate_operation(unique_name).status.lower() == "inprogress"

    signed = ca.issue(csr.public_key(), csr.subject, [host])
    # As Microsoft's documentation does it: the base64 body of the PEM, leaf first, then the CA.
    merged = cert_client.merge_certificate(unique_name, [pem_body(signed), pem_body(ca.cert)])
    assert bytes(merged.cer) == der(signed)
    assert cert_client.get_certificate_operation(unique_name).status.lower() == "completed"
    key, leaf, chain = open_pfx_secret(secret_client.get_secret(unique_name))
    assert der(leaf) == der(signed)
    check_key_matches(key, signed)
    verify_chain(leaf, chain, ca.cert, host)


def test_csr_merge_with_der_bytes(cert_client, unique_name):
    policy = CertificatePolicy(issuer_name="Unknown", subject=f"CN={unique_name}", key_type=KeyType.ec)
    op = cert_client.begin_create_certificate(unique_name, policy).result()
    csr = x509.load_der_x509_csr(bytes(op.csr))
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
    signed = ExternalCA().issue(csr.public_key(), csr.subject, [f"{unique_name}.example"])
    merged = cert_client.merge_certificate(unique_name, [der(signed)])
    assert bytes(merged.cer) == der(signed)


def test_pending_operation_cancel_and_delete(cert_client, unique_name):
    policy = CertificatePolicy(issuer_name="Unknown", subject=f"CN={unique_name}")
    cert_client.begin_create_certificate(unique_name, policy).result()
    cancelled = cert_client.cancel_certificate_operation(unique_name)
    assert cancelled.cancellation_requested is True
    deleted = cert_client.delete_certificate_operation(unique_name)
    assert deleted.id.endswith(f"/certificates/{unique_name}/pending")
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_certificate_operation(unique_name)
    with pytest.raises(HttpResponseError) as e:
        cert_client.merge_certificate(unique_name, [pem_body(ExternalCA().cert)])
    assert status(e) in (400, 404)


# ---------------------------------------------------------------------------------------------------
# Versions, properties, policy
# ---------------------------------------------------------------------------------------------------


def test_versions_properties_and_policy_update(cert_client, unique_name):
    v1 = cert_client.begin_create_certificate(
        unique_name, CertificatePolicy(issuer_name="Self", subject=f"CN={unique_name}-v1")
    ).result()
    new_policy = CertificatePolicy(
        issuer_name="Self",
        subject=f"CN={unique_name}-v2",
        san_dns_names=[f"{unique_name}.v2.example"],
        key_type=KeyType.ec,
        key_curve_name=KeyCurveName.p_384,
        content_type=PEM,
        validity_in_months=6,
        key_usage=["digitalSignature"],
        lifetime_actions=[LifetimeAction(CertificatePolicyAction.email_contacts, days_before_expiry=30)],
    )
    updated = cert_client.update_certificate_policy(unique_name, new_policy)
    assert updated.subject == f"CN={unique_name}-v2"
    assert updated.key_type == KeyType.ec and updated.key_curve_name == KeyCurveName.p_384
    assert updated.content_type == PEM and updated.validity_in_months == 6
    assert [(a.action, a.days_before_expiry) for a in updated.lifetime_actions] == [
        (CertificatePolicyAction.email_contacts, 30)
    ]
    fetched = cert_client.get_certificate_policy(unique_name)
    assert fetched.subject == updated.subject and fetched.san_dns_names == [f"{unique_name}.v2.example"]
    # The existing version is unchanged by a policy update.
    assert cn(sdk_cert(cert_client.get_certificate_version(unique_name, v1.properties.version))) == f"{unique_name}-v1"

    v2 = cert_client.begin_create_certificate(unique_name, fetched).result()
    assert v2.properties.version != v1.properties.version
    leaf2 = sdk_cert(v2)
    assert cn(leaf2) == f"{unique_name}-v2" and leaf2.public_key().curve.name == "secp384r1"
    assert names_of_versions(cert_client, unique_name) == {v1.properties.version, v2.properties.version}
    assert cert_client.get_certificate(unique_name).properties.version == v2.properties.version
    assert any(p.name == unique_name for p in cert_client.list_properties_of_certificates())

    props = cert_client.update_certificate_properties(
        unique_name, v1.properties.version, enabled=False, tags={"retired": "yes"}
    )
    assert props.properties.enabled is False and props.properties.tags == {"retired": "yes"}
    assert cert_client.get_certificate_version(unique_name, v1.properties.version).properties.enabled is False
    assert cert_client.get_certificate(unique_name).properties.enabled is True
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_certificate_version(unique_name, "0" * 32)


def test_auto_renew_by_lifetime_action(cert_client, unique_name):
    """A short-lived certificate whose AutoRenew trigger is already reached is renewed by the server's
    background task: exactly one new version (a new key, as reuse_key is false)."""
    key = ec.generate_private_key(ec.SECP256R1())
    short = self_signed(f"{unique_name}.renew.example", key, datetime.timedelta(minutes=10))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + short.public_bytes(serialization.Encoding.PEM)
    policy = CertificatePolicy(
        issuer_name="Self",
        subject=f"CN={unique_name}.renew.example",
        key_type=KeyType.ec,
        key_curve_name=KeyCurveName.p_256,
        content_type=PEM,
        validity_in_months=1,
        reuse_key=False,
        lifetime_actions=[LifetimeAction(CertificatePolicyAction.auto_renew, days_before_expiry=1)],
    )
    first = cert_client.import_certificate(unique_name, pem, policy=policy)
    assert bytes(first.cer) == der(short)
    assert first.policy.lifetime_actions[0].action == CertificatePolicyAction.auto_renew

    deadline = time.monotonic() + 120
    versions = names_of_versions(cert_client, unique_name)
    while len(versions) < 2 and time.monotonic() < deadline:
        time.sleep(1)
        versions = names_of_versions(cert_client, unique_name)
    assert len(versions) == 2, f"no renewal within 120 s: versions {versions}"
    renewed = cert_client.get_certificate(unique_name)
    assert renewed.properties.version != first.properties.version
    leaf = sdk_cert(renewed)
    assert cn(leaf) == f"{unique_name}.renew.example"
    assert spki(leaf) != spki(short), "reuse_key=false: a new key"
    assert leaf.not_valid_after_utc > short.not_valid_after_utc + datetime.timedelta(days=20)
    # Exactly once: later maintenance ticks do not renew the same version again.
    time.sleep(6)
    assert len(names_of_versions(cert_client, unique_name)) == 2


# ---------------------------------------------------------------------------------------------------
# Delete / recover / purge, backup / restore
# ---------------------------------------------------------------------------------------------------


def test_delete_recover_purge_carries_key_and_secret(cert_client, key_client, secret_client, unique_name):
    created = cert_client.begin_create_certificate(unique_name, CertificatePolicy.get_default()).result()
    pfx = secret_client.get_secret(unique_name).value
    deleted = cert_client.begin_delete_certificate(unique_name).result()
    assert deleted.name == unique_name
    assert deleted.recovery_id and unique_name in deleted.recovery_id
    assert deleted.scheduled_purge_date > deleted.deleted_on
    assert bytes(deleted.cer) == bytes(created.cer)
    for get in (cert_client.get_certificate, key_client.get_key, secret_client.get_secret):
        with pytest.raises(ResourceNotFoundError):
            get(unique_name)
    assert cert_client.get_deleted_certificate(unique_name).name == unique_name
    assert any(d.name == unique_name for d in cert_client.list_deleted_certificates())
    # Recovering the key or secret alone is refused: they belong to the certificate.
    with pytest.raises(HttpResponseError) as e:
        key_client.begin_recover_deleted_key(unique_name).result()
    assert status(e) in (403, 404)

    recovered = cert_client.begin_recover_deleted_certificate(unique_name).result()
    assert recovered.properties.version == created.properties.version
    assert key_client.get_key(unique_name).id == created.key_id
    assert secret_client.get_secret(unique_name).value == pfx

    cert_client.begin_delete_certificate(unique_name).result()
    cert_client.purge_deleted_certificate(unique_name)
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_deleted_certificate(unique_name)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_deleted_key(unique_name)
    with pytest.raises(ResourceNotFoundError):
        secret_client.get_deleted_secret(unique_name)
    # The name is free again.
    cert_client.begin_create_certificate(unique_name, CertificatePolicy.get_default()).result()


def test_backup_restore(cert_client, secret_client, unique_name):
    created = cert_client.begin_create_certificate(unique_name, CertificatePolicy.get_default()).result()
    key, _, _ = open_pfx_secret(secret_client.get_secret(unique_name))
    backup = cert_client.backup_certificate(unique_name)
    assert isinstance(backup, bytes) and len(backup) > 0
    key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert key_der not in backup and base64.b64encode(key_der[:48]) not in backup, "no private key in the clear"
    with pytest.raises(ResourceExistsError):
        cert_client.restore_certificate_backup(backup)
    cert_client.begin_delete_certificate(unique_name).result()
    cert_client.purge_deleted_certificate(unique_name)
    restored = cert_client.restore_certificate_backup(backup)
    assert restored.name == unique_name and bytes(restored.cer) == bytes(created.cer)
    assert restored.properties.version == created.properties.version
    got_key, leaf, _ = open_pfx_secret(secret_client.get_secret(unique_name))
    assert spki(got_key) == spki(key)
    check_key_matches(got_key, leaf)
    with pytest.raises(HttpResponseError) as e:
        cert_client.restore_certificate_backup(b"not a backup")
    assert status(e) == 400


# ---------------------------------------------------------------------------------------------------
# Issuers and contacts
# ---------------------------------------------------------------------------------------------------


def test_issuers(cert_client, unique_name):
    name = f"iss-{uuid.uuid4().hex[:8]}"
    admin = AdministratorContact(first_name="Ada", last_name="Admin", email="ada@example.com", phone="+1 555 0100")
    created = cert_client.create_issuer(
        name, "Test", account_id="acct-1", password="issuer-password", organization_id="org-1", admin_contacts=[admin]
    )
    assert created.name == name and created.provider == "Test"
    assert created.account_id == "acct-1" and created.organization_id == "org-1"
    assert created.password is None, "the issuer's password is never returned"
    assert [(c.email, c.first_name) for c in created.admin_contacts] == [("ada@example.com", "Ada")]
    got = cert_client.get_issuer(name)
    assert got.id == created.id and got.password is None and got.enabled is True
    updated = cert_client.update_issuer(name, account_id="acct-2", enabled=False)
    assert updated.account_id == "acct-2" and updated.enabled is False and updated.organization_id == "org-1"
    assert any(i.name == name and i.provider == "Test" for i in cert_client.list_properties_of_issuers())

    # A create naming it ends in a visible failure (Enclava has no external CA connectors).
    cert_client.update_issuer(name, enabled=True)
    result = cert_client.begin_create_certificate(
        unique_name, CertificatePolicy(issuer_name=name, subject=f"CN={unique_name}")
    ).result()
    assert isinstance(result, CertificateOperation), result
    assert result.status.lower() == "failed"
    assert result.error is not None and result.error.message
    assert cert_client.get_certificate_operation(unique_name).status.lower() == "failed"

    deleted = cert_client.delete_issuer(name)
    assert deleted.name == name
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_issuer(name)


def test_contacts(cert_client):
    contacts = [
        CertificateContact(email="ops@example.com", name="Ops", phone="+1 555 0101"),
        CertificateContact(email="sec@example.com", name="Security"),
    ]
    stored = cert_client.set_contacts(contacts)
    assert [(c.email, c.name, c.phone) for c in stored] == [
        ("ops@example.com", "Ops", "+1 555 0101"),
        ("sec@example.com", "Security", None),
    ]
    assert [c.email for c in cert_client.get_contacts()] == ["ops@example.com", "sec@example.com"]
    removed = cert_client.delete_contacts()
    assert [c.email for c in removed] == ["ops@example.com", "sec@example.com"]
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_contacts()


# ---------------------------------------------------------------------------------------------------
# RBAC: Key Vault's built-in roles
# ---------------------------------------------------------------------------------------------------


def test_rbac_certificates_officer(server, cert_client, unique_name):
    cred = principal_credential(server, "Key Vault Certificates Officer")
    with CertificateClient(server.url, cred, **server.client_kwargs()) as officer:
        created = officer.begin_create_certificate(unique_name, CertificatePolicy.get_default()).result()
        assert officer.get_certificate(unique_name).id == created.id
        officer.update_certificate_policy(unique_name, CertificatePolicy(issuer_name="Self", subject="CN=officer"))
        issuer = f"iss-{uuid.uuid4().hex[:8]}"
        officer.create_issuer(issuer, "Test")
        officer.delete_issuer(issuer)
        officer.begin_delete_certificate(unique_name).result()
        officer.begin_recover_deleted_certificate(unique_name).result()
    # ... but neither the private key through the secret nor crypto with the key.
    with SecretClient(server.url, cred, **server.client_kwargs()) as secrets:
        with pytest.raises(HttpResponseError) as e:
            secrets.get_secret(unique_name)
        assert status(e) == 403
    with pytest.raises(HttpResponseError) as e:
        remote_client(created.key_id, server, cred).sign(SignatureAlgorithm.rs256, b"\x01" * 32)
    assert status(e) == 403


def test_rbac_secrets_user_reads_the_certificate_secret(server, cert_client, unique_name):
    created = cert_client.begin_create_certificate(unique_name, CertificatePolicy.get_default()).result()
    cred = principal_credential(server, "Key Vault Secrets User")
    with SecretClient(server.url, cred, **server.client_kwargs()) as secrets:
        key, leaf, _ = open_pfx_secret(secrets.get_secret(unique_name))
        assert der(leaf) == bytes(created.cer)
        check_key_matches(key, leaf)
    with CertificateClient(server.url, cred, **server.client_kwargs()) as certs:
        with pytest.raises(HttpResponseError) as e:
            certs.begin_create_certificate(unique_name + "-x", CertificatePolicy.get_default())
        assert status(e) == 403
        with pytest.raises(HttpResponseError) as e:
            certs.begin_delete_certificate(unique_name).result()
        assert status(e) == 403


def test_rbac_certificate_user_is_read_only(server, cert_client, unique_name):
    created = cert_client.begin_create_certificate(unique_name, CertificatePolicy.get_default()).result()
    cred = principal_credential(server, "Key Vault Certificate User")
    with CertificateClient(server.url, cred, **server.client_kwargs()) as certs:
        assert bytes(certs.get_certificate(unique_name).cer) == bytes(created.cer)
        assert created.properties.version in names_of_versions(certs, unique_name)
        assert any(p.name == unique_name for p in certs.list_properties_of_certificates())
        denied = [
            lambda: certs.begin_create_certificate(unique_name, CertificatePolicy.get_default()),
            lambda: certs.update_certificate_properties(unique_name, created.properties.version, enabled=False),
            lambda: certs.update_certificate_policy(unique_name, CertificatePolicy.get_default()),
            lambda: certs.begin_delete_certificate(unique_name).result(),
            lambda: certs.backup_certificate(unique_name),
            lambda: certs.create_issuer(f"iss-{uuid.uuid4().hex[:8]}", "Test"),
            lambda: certs.set_contacts([CertificateContact(email="x@example.com")]),
        ]
        for call in denied:
            with pytest.raises(HttpResponseError) as e:
                call()
            assert status(e) == 403
    assert cert_client.get_certificate(unique_name).properties.enabled is True


def test_rbac_crypto_user_signs_with_the_certificate_key(server, cert_client, unique_name):
    created = cert_client.begin_create_certificate(
        unique_name, CertificatePolicy(issuer_name="Self", subject=f"CN={unique_name}", key_type=KeyType.ec)
    ).result()
    leaf = sdk_cert(created)
    cred = principal_credential(server, "Key Vault Crypto User")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"workload data")
    sig = remote_client(created.key_id, server, cred).sign(SignatureAlgorithm.es256, digest.finalize()).signature
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    leaf.public_key().verify(encode_dss_signature(r, s), b"workload data", ec.ECDSA(hashes.SHA256()))
    with CertificateClient(server.url, cred, **server.client_kwargs()) as certs:
        with pytest.raises(HttpResponseError) as e:
            certs.begin_create_certificate(unique_name + "-x", CertificatePolicy.get_default())
        assert status(e) == 403

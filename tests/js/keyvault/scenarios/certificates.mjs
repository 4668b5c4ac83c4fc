// CertificateClient (@azure/keyvault-certificates 4.10.3, default options) against the real server:
// create (Self, Enclava) and poll, download through the secret (@azure/keyvault-secrets), import
// PFX/PEM, CSR + merge, versions, policy update, auto-renew, delete/recover/purge, backup/restore,
// issuers and contacts. Certificates are checked with node:crypto's X509Certificate and the
// `openssl` command line (PKCS#12, chain verification, signing a CSR with a test CA), never with
// Enclava's own code.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate, createHash, createPrivateKey, createPublicKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get as httpsGet } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificateClient } from "@azure/keyvault-certificates";
import { all, clientOptions, credential, restError, secretClient, unique, url } from "../lib/sdk.mjs";

const POLL = { intervalInMs: 50 };
const CA_ROUTE = "/enclava/certificates/ca";

const certificateClient = () => new CertificateClient(url, credential, clientOptions);

// --- helpers -------------------------------------------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), "enclava-jscert-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const file = (name, data) => {
  const p = join(tmp, `${n++}-${name}`);
  if (data !== undefined) writeFileSync(p, data);
  return p;
};

/** Run openssl; returns stdout (Buffer). Throws with openssl's stderr on failure. */
function openssl(...args) {
  try {
    return execFileSync("openssl", args, { stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    throw new Error(`openssl ${args.join(" ")} failed: ${e.stderr}`);
  }
}

/** The Enclava issuing CA (public PEM) from the server, trusted through NODE_EXTRA_CA_CERTS. */
function fetchCa() {
  return new Promise((ok, fail) => {
    httpsGet(`${url}${CA_ROUTE}`, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? ok(body) : fail(new Error(`GET ${CA_ROUTE} -> ${res.statusCode}: ${body}`))));
    }).on("error", fail);
  });
}

const x509 = (der) => new X509Certificate(Buffer.from(der));
const spki = (keyOrCert) => (keyOrCert.publicKey ?? createPublicKey(keyOrCert)).export({ type: "spki", format: "der" });
const pemCerts = (text) => (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));

/** A PKCS#12 secret (base64, no password) opened with openssl: { key, certs (leaf first) }. */
function openPfx(secret) {
  assert.equal(secret.properties.contentType, "application/x-pkcs12");
  const pfx = file("secret.pfx", Buffer.from(secret.value, "base64"));
  const key = createPrivateKey(openssl("pkcs12", "-in", pfx, "-nocerts", "-nodes", "-passin", "pass:"));
  const certs = pemCerts(openssl("pkcs12", "-in", pfx, "-nokeys", "-passin", "pass:").toString());
  const leaf = new X509Certificate(openssl("pkcs12", "-in", pfx, "-nokeys", "-clcerts", "-passin", "pass:"));
  return { key, leaf, certs };
}

/** A PEM secret: PKCS#8 PRIVATE KEY + chain, leaf first. */
function openPem(secret) {
  assert.equal(secret.properties.contentType, "application/x-pem-file");
  assert.match(secret.value, /-----BEGIN PRIVATE KEY-----/);
  const key = createPrivateKey(secret.value.match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/)[0]);
  const certs = pemCerts(secret.value);
  return { key, leaf: certs[0], certs };
}

/** openssl verify of leaf to the root, with the other certificates as untrusted intermediates and the host name. */
function verifyChain(leaf, certs, rootPem, host) {
  const args = ["verify", "-CAfile", file("root.pem", rootPem), "-verify_hostname", host, "-purpose", "sslserver"];
  const rest = certs.filter((c) => !c.raw.equals(leaf.raw));
  if (rest.length) args.push("-untrusted", file("chain.pem", rest.map((c) => c.toString()).join("")));
  args.push(file("leaf.pem", leaf.toString()));
  return openssl(...args).toString();
}

/** A test CA made with openssl: { key, crt, pem }. */
function testCa() {
  const key = file("ca.key");
  const crt = file("ca.crt");
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
    "-days", "30", "-subj", "/CN=Enclava node test CA", "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  return { key, crt, pem: readFileSync(crt, "utf8") };
}

/** A leaf for `host` signed by `ca` with a new RSA key: { keyPem (PKCS#8), certPem }. */
function testLeaf(ca, host, days = 10) {
  const key = file("leaf.key");
  const csr = file("leaf.csr");
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${host}`);
  return { keyPem: readFileSync(key, "utf8"), certPem: signCsr(ca, csr, host, days) };
}

function signCsr(ca, csrPath, host, days = 10) {
  const ext = file("ext.cnf", `subjectAltName=DNS:${host}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  const out = file("signed.crt");
  openssl("x509", "-req", "-in", csrPath, "-CA", ca.crt, "-CAkey", ca.key, "-CAcreateserial", "-days", String(days), "-extfile", ext, "-out", out);
  return readFileSync(out, "utf8");
}

/** A policy's lifetime actions as [action, lifetimePercentage, daysBeforeExpiry]. */
const actions = (policy) => (policy.lifetimeActions ?? []).map((a) => [a.action, a.lifetimePercentage, a.daysBeforeExpiry]);
const derOfPem = (pem) => new X509Certificate(pem).raw;
const versionsOf = async (client, name) => new Set((await all(client.listPropertiesOfCertificateVersions(name))).map((p) => p.version));

// --- scenarios -------------------------------------------------------------------------------------

export async function createSelfSignedAndDownloadPfx() {
  const client = certificateClient();
  const secrets = secretClient();
  const name = unique("js-cert-self");
  const host = `${name}.example`;
  const poller = await client.beginCreateCertificate(name, { issuerName: "Self", subject: `CN=${host}`, subjectAlternativeNames: { dnsNames: [host] } }, POLL);
  const cert = await poller.pollUntilDone();
  const version = cert.properties.version;
  assert.equal(cert.properties.id, `${url}/certificates/${name}/${version}`);
  assert.equal(cert.keyId, `${url}/keys/${name}/${version}`);
  assert.equal(cert.secretId, `${url}/secrets/${name}/${version}`);
  const leaf = x509(cert.cer);
  assert.equal(leaf.checkHost(host), host);
  assert.ok(leaf.verify(leaf.publicKey), "self-signed by its own key");
  assert.equal(leaf.publicKey.asymmetricKeyDetails.modulusLength, 2048);
  assert.deepEqual(Buffer.from(cert.properties.x509Thumbprint), createHash("sha1").update(leaf.raw).digest());
  assert.equal(cert.properties.expiresOn.getTime(), new Date(leaf.validTo).getTime());
  assert.equal(cert.policy.issuerName, "Self");
  assert.equal(cert.policy.contentType, "application/x-pkcs12");
  assert.equal(cert.policy.exportable, true);
  assert.deepEqual(actions(cert.policy), [["AutoRenew", 80, undefined]]);
  assert.deepEqual(Buffer.from((await client.getCertificateVersion(name, version)).cer), leaf.raw);

  const secret = await secrets.getSecret(name);
  assert.equal(secret.properties.managed, true); // (the JS secrets SDK does not surface `kid`)
  const { key, leaf: pfxLeaf } = openPfx(secret);
  assert.ok(pfxLeaf.raw.equals(leaf.raw));
  assert.ok(spki(key).equals(spki(leaf)), "the PFX's private key matches the certificate");
  assert.ok(leaf.checkPrivateKey(key));
  // The managed secret is read-only through /secrets.
  const e = await restError(secrets.setSecret(name, "overwrite"));
  assert.equal(e.statusCode, 403);
  assert.match(e.message, new RegExp(name));
}

export async function createEnclavaIssuedPfxAndPem() {
  const client = certificateClient();
  const secrets = secretClient();
  const caPem = await fetchCa();
  const ca = new X509Certificate(caPem);
  assert.match(ca.subject, /Enclava Certificate Issuing CA/);
  assert.ok(ca.ca, "the Enclava issuing CA is a CA");
  // Not the server's own TLS CA.
  const tlsCa = new X509Certificate(readFileSync(process.env.NODE_EXTRA_CA_CERTS));
  assert.ok(!spki(ca).equals(spki(tlsCa)));

  // RSA 3072, PKCS#12.
  const name = unique("js-cert-enclava");
  const host = `${name}.svc.example`;
  const cert = await (await client.beginCreateCertificate(name, {
    issuerName: "Enclava", subject: `CN=${host}`, subjectAlternativeNames: { dnsNames: [host] }, keyType: "RSA", keySize: 3072,
  }, POLL)).pollUntilDone();
  const leaf = x509(cert.cer);
  assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), "issued by the Enclava CA");
  assert.equal(leaf.publicKey.asymmetricKeyDetails.modulusLength, 3072);
  const pfx = openPfx(await secrets.getSecret(name));
  assert.ok(pfx.leaf.raw.equals(leaf.raw) && pfx.leaf.checkPrivateKey(pfx.key));
  assert.match(verifyChain(pfx.leaf, pfx.certs, caPem, host), /OK/);
  assert.throws(() => verifyChain(pfx.leaf, pfx.certs, caPem, "vault.example"), /failed/);
  assert.throws(() => verifyChain(pfx.leaf, pfx.certs, tlsCa.toString(), host), /failed/);

  // EC P-384, PEM.
  const name2 = unique("js-cert-enclava-pem");
  const host2 = `${name2}.svc.example`;
  const cert2 = await (await client.beginCreateCertificate(name2, {
    issuerName: "Enclava", subject: `CN=${host2}`, subjectAlternativeNames: { dnsNames: [host2] }, keyType: "EC",
    keyCurveName: "P-384", contentType: "application/x-pem-file",
  }, POLL)).pollUntilDone();
  const leaf2 = x509(cert2.cer);
  assert.equal(leaf2.publicKey.asymmetricKeyDetails.namedCurve, "secp384r1");
  const pem = openPem(await secrets.getSecret(name2));
  assert.ok(pem.leaf.raw.equals(leaf2.raw) && pem.leaf.checkPrivateKey(pem.key));
  assert.match(verifyChain(pem.leaf, pem.certs, caPem, host2), /OK/);
}

export async function importPfxAndPem() {
  const client = certificateClient();
  const secrets = secretClient();
  const ca = testCa();
  const name = unique("js-cert-import");
  const { keyPem, certPem } = testLeaf(ca, `${name}.example`);
  const pfx = openssl("pkcs12", "-export", "-inkey", file("k.pem", keyPem), "-in", file("c.pem", certPem), "-certfile", ca.crt,
    "-passout", "pass:js-import-pw");
  const bad = await restError(client.importCertificate(name, pfx, { password: "wrong" }));
  assert.equal(bad.statusCode, 400);
  assert.equal((await restError(client.getCertificate(name))).statusCode, 404, "a failed import writes nothing");
  const imported = await client.importCertificate(name, pfx, { password: "js-import-pw", tags: { src: "pfx" } });
  assert.ok(Buffer.from(imported.cer).equals(derOfPem(certPem)));
  assert.deepEqual(imported.properties.tags, { src: "pfx" });
  const got = openPfx(await secrets.getSecret(name));
  assert.ok(got.leaf.raw.equals(derOfPem(certPem)) && got.leaf.checkPrivateKey(got.key));
  assert.match(verifyChain(got.leaf, got.certs, ca.pem, `${name}.example`), /OK/);

  // PEM (the JS SDK sends PEM text as is): PKCS#8 key, leaf, CA.
  const name2 = unique("js-cert-import-pem");
  const leaf2 = testLeaf(ca, `${name2}.example`);
  const pemText = leaf2.keyPem + leaf2.certPem + ca.pem;
  const imported2 = await client.importCertificate(name2, Buffer.from(pemText), { policy: { contentType: "application/x-pem-file" } });
  assert.ok(Buffer.from(imported2.cer).equals(derOfPem(leaf2.certPem)));
  const got2 = openPem(await secrets.getSecret(name2));
  assert.ok(got2.leaf.raw.equals(derOfPem(leaf2.certPem)) && got2.leaf.checkPrivateKey(got2.key));
  assert.equal(got2.certs.length, 2);

  // The key must match the leaf.
  const other = testLeaf(ca, "other.example");
  const mismatch = await restError(client.importCertificate(unique("js-cert-mismatch"), Buffer.from(other.keyPem + leaf2.certPem),
    { policy: { contentType: "application/x-pem-file" } }));
  assert.equal(mismatch.statusCode, 400);
}

export async function csrMerge() {
  const client = certificateClient();
  const secrets = secretClient();
  const name = unique("js-cert-csr");
  const host = `${name}.example`;
  // The create poller would wait for a signed certificate: start it and read the operation.
  await client.beginCreateCertificate(name, { issuerName: "Unknown", subject: `CN=${host}`, subjectAlternativeNames: { dnsNames: [host] } }, POLL);
  const opPoller = await client.getCertificateOperation(name, POLL);
  const op = opPoller.getOperationState().certificateOperation;
  assert.equal(op.status, "inProgress");
  assert.equal(op.issuerName, "Unknown");
  // As Microsoft's documentation: wrap the CSR in PEM, sign it with openssl, merge the base64 body.
  const csrPem = ["-----BEGIN CERTIFICATE REQUEST-----", Buffer.from(op.csr).toString("base64"), "-----END CERTIFICATE REQUEST-----"].join("\n");
  const csrPath = file("op.csr", csrPem);
  openssl("req", "-in", csrPath, "-verify", "-noout"); // throws unless the CSR's self-signature verifies
  assert.match(openssl("req", "-in", csrPath, "-noout", "-subject").toString(), new RegExp(`CN ?= ?${host}`));
  const ca = testCa();
  // A certificate for another key is refused.
  const wrong = testLeaf(ca, host);
  const e = await restError(client.mergeCertificate(name, [Buffer.from(wrong.certPem.trim().split("\n").slice(1, -1).join(""))]));
  assert.equal(e.statusCode, 400);
  const signed = signCsr(ca, csrPath, host);
  const base64Crt = signed.trim().split("\n").slice(1, -1).join("");
  const merged = await client.mergeCertificate(name, [Buffer.from(base64Crt)]);
  assert.ok(Buffer.from(merged.cer).equals(derOfPem(signed)));
  const got = openPfx(await secrets.getSecret(name));
  assert.ok(got.leaf.raw.equals(derOfPem(signed)) && got.leaf.checkPrivateKey(got.key));
  const done = await client.getCertificateOperation(name, POLL);
  assert.equal(done.getOperationState().certificateOperation.status, "completed");
}

export async function versionsAndPolicyUpdate() {
  const client = certificateClient();
  const name = unique("js-cert-ver");
  const v1 = await (await client.beginCreateCertificate(name, { issuerName: "Self", subject: `CN=${name}-v1` }, POLL)).pollUntilDone();
  // (updateCertificatePolicy's own return value is not the reply in this SDK version: read it back.)
  await client.updateCertificatePolicy(name, {
    issuerName: "Self", subject: `CN=${name}-v2`, keyType: "EC", keyCurveName: "P-256", validityInMonths: 6,
    contentType: "application/x-pem-file", lifetimeActions: [{ action: "EmailContacts", daysBeforeExpiry: 20 }],
  });
  const fetched = await client.getCertificatePolicy(name);
  assert.equal(fetched.subject, `CN=${name}-v2`);
  assert.equal(fetched.keyType, "EC");
  assert.equal(fetched.keyCurveName, "P-256");
  assert.equal(fetched.validityInMonths, 6);
  assert.equal(fetched.contentType, "application/x-pem-file");
  assert.deepEqual(actions(fetched), [["EmailContacts", undefined, 20]]);
  const v2 = await (await client.beginCreateCertificate(name, fetched, POLL)).pollUntilDone();
  assert.notEqual(v2.properties.version, v1.properties.version);
  assert.match(x509(v2.cer).subject, new RegExp(`CN=${name}-v2`));
  assert.equal(x509(v2.cer).publicKey.asymmetricKeyType, "ec");
  assert.deepEqual(await versionsOf(client, name), new Set([v1.properties.version, v2.properties.version]));
  assert.match(x509((await client.getCertificateVersion(name, v1.properties.version)).cer).subject, new RegExp(`CN=${name}-v1`));
  const updated = await client.updateCertificateProperties(name, v1.properties.version, { enabled: false, tags: { old: "yes" } });
  assert.equal(updated.properties.enabled, false);
  assert.deepEqual(updated.properties.tags, { old: "yes" });
  assert.ok((await all(client.listPropertiesOfCertificates())).some((p) => p.name === name));
  const nf = await restError(client.getCertificate(unique("js-no-such-cert")));
  assert.equal(nf.statusCode, 404);
}

export async function autoRenew() {
  const client = certificateClient();
  const name = unique("js-cert-renew");
  const host = `${name}.example`;
  // A short-lived certificate whose AutoRenew trigger (1 day before expiry) is already reached.
  const key = file("renew.key");
  const crt = file("renew.crt");
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
    "-subj", `/CN=${host}`, "-addext", `subjectAltName=DNS:${host}`, "-days", "1");
  // (`openssl -days` counts whole days: with 1 day of validity, "1 day before expiry" is due at once.)
  // This SDK version does not send importCertificate's `policy` (it only picks the encoding from its
  // contentType), so the renewal policy is set with updateCertificatePolicy after the import.
  const first = await client.importCertificate(name, Buffer.from(readFileSync(key, "utf8") + readFileSync(crt, "utf8")), {
    policy: { contentType: "application/x-pem-file" },
  });
  await client.updateCertificatePolicy(name, {
    issuerName: "Self", subject: `CN=${host}`, keyType: "EC", keyCurveName: "P-256", validityInMonths: 1, reuseKey: false,
    contentType: "application/x-pem-file", lifetimeActions: [{ action: "AutoRenew", daysBeforeExpiry: 1 }],
  });
  assert.deepEqual(actions(await client.getCertificatePolicy(name)), [["AutoRenew", undefined, 1]]);
  const deadline = Date.now() + 120_000;
  let versions = await versionsOf(client, name);
  while (versions.size < 2 && Date.now() < deadline) {
    await new Promise((ok) => setTimeout(ok, 1000));
    versions = await versionsOf(client, name);
  }
  assert.equal(versions.size, 2, `no renewal within 120 s: ${[...versions]}`);
  const renewed = await client.getCertificate(name);
  assert.notEqual(renewed.properties.version, first.properties.version);
  assert.ok(!spki(x509(renewed.cer)).equals(spki(x509(first.cer))), "a new key (reuseKey false)");
  assert.ok(renewed.properties.expiresOn > first.properties.expiresOn);
  await new Promise((ok) => setTimeout(ok, 6000));
  assert.equal((await versionsOf(client, name)).size, 2, "renewed exactly once");
}

export async function deleteRecoverPurgeBackupRestore() {
  const client = certificateClient();
  const secrets = secretClient();
  const name = unique("js-cert-del");
  const cert = await (await client.beginCreateCertificate(name, { issuerName: "Self", subject: `CN=${name}` }, POLL)).pollUntilDone();
  const pfx = (await secrets.getSecret(name)).value;
  const deleted = await (await client.beginDeleteCertificate(name, POLL)).pollUntilDone();
  assert.equal(deleted.name, name);
  assert.ok(deleted.recoveryId.includes(name));
  assert.ok(deleted.scheduledPurgeDate > deleted.deletedOn);
  assert.equal((await restError(client.getCertificate(name))).statusCode, 404);
  assert.equal((await restError(secrets.getSecret(name))).statusCode, 404, "the secret goes with the certificate");
  assert.equal((await client.getDeletedCertificate(name)).name, name);
  assert.ok((await all(client.listDeletedCertificates())).some((d) => d.name === name));
  const recovered = await (await client.beginRecoverDeletedCertificate(name, POLL)).pollUntilDone();
  assert.equal(recovered.properties.version, cert.properties.version);
  assert.equal((await secrets.getSecret(name)).value, pfx);

  const backup = await client.backupCertificate(name);
  assert.ok(backup instanceof Uint8Array && backup.length > 0);
  assert.equal((await restError(client.restoreCertificateBackup(backup))).statusCode, 409);
  await (await client.beginDeleteCertificate(name, POLL)).pollUntilDone();
  await client.purgeDeletedCertificate(name);
  assert.equal((await restError(client.getDeletedCertificate(name))).statusCode, 404);
  const restored = await client.restoreCertificateBackup(backup);
  assert.equal(restored.name, name);
  assert.ok(Buffer.from(restored.cer).equals(Buffer.from(cert.cer)));
  assert.equal((await secrets.getSecret(name)).value, pfx);
}

export async function issuersAndContacts() {
  const client = certificateClient();
  const issuer = unique("js-issuer");
  const created = await client.createIssuer(issuer, "Test", {
    accountId: "acct-1", password: "issuer-secret", organizationId: "org-1",
    administratorContacts: [{ firstName: "Ada", lastName: "Admin", email: "ada@example.com", phone: "+1 555 0100" }],
  });
  // (This SDK derives `name` from the id as if it were a certificate id: /certificates/issuers/{name}.)
  assert.equal(created.id, `${url}/certificates/issuers/${issuer}`);
  assert.equal(created.provider, "Test");
  assert.equal(created.password, undefined, "the issuer password is never returned");
  assert.equal(created.accountId, "acct-1");
  const got = await client.getIssuer(issuer);
  assert.equal(got.organizationId, "org-1");
  assert.deepEqual(got.administratorContacts.map((c) => c.email), ["ada@example.com"]);
  const updated = await client.updateIssuer(issuer, { accountId: "acct-2" });
  assert.equal(updated.accountId, "acct-2");
  assert.equal(updated.organizationId, "org-1");
  assert.ok((await all(client.listPropertiesOfIssuers())).some((i) => i.id === `${url}/certificates/issuers/${issuer}` && i.provider === "Test"));
  await client.deleteIssuer(issuer);
  assert.equal((await restError(client.getIssuer(issuer))).statusCode, 404);

  const contacts = [{ email: "ops@example.com", name: "Ops", phone: "+1 555 0101" }, { email: "sec@example.com", name: "Security" }];
  const set = await client.setContacts(contacts);
  assert.deepEqual(set.map((c) => c.email), ["ops@example.com", "sec@example.com"]);
  assert.deepEqual((await client.getContacts()).map((c) => c.name), ["Ops", "Security"]);
  await client.deleteContacts();
  assert.equal((await restError(client.getContacts())).statusCode, 404);
}

// Runs Microsoft's Azure Attestation JavaScript SDK (@azure/attestation 1.0.0), unchanged and with
// its default options (token validation included), against an Enclava server in MAA *isolated*
// mode (trusted policy signers configured, attestation.alg RS256). The SDK authenticates with a
// static bearer credential holding the server's admin token (as
// tests/python/test_attestation_policy_management.py does). Started by isolated.test.mjs as a
// child process so that NODE_EXTRA_CA_CERTS (the server's CA) is set before Node starts. Prints one
// JSON object: what each call returned, or its error together with what the SDK sent (the JWS and
// its decoded header) and what the server answered (status, body).
//
// Usage: node isolated-sdk.mjs <scenario>
// env: ENCLAVA_URL, ENCLAVA_ADMIN_TOKEN, ENCLAVA_SIGNERS (directory holding first.key/first.pem,
//      second.key/second.pem: PKCS#8 RSA keys and their self-signed certificates)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, X509Certificate } from 'node:crypto';
import {
  AttestationAdministrationClient,
  KnownAttestationType,
  createAttestationPolicyToken,
} from '@azure/attestation';

const url = process.env.ENCLAVA_URL;
const adminToken = process.env.ENCLAVA_ADMIN_TOKEN;
const signersDir = process.env.ENCLAVA_SIGNERS;
const SGX = KnownAttestationType.SgxEnclave;

const POLICY = `version= 1.0;
authorizationrules
{
    [ type=="x-ms-sgx-is-debuggable", value==false ] => permit();
};
issuancerules {
    c:[type=="x-ms-sgx-mrsigner"] => issue(type="custom-name", value=c.value);
};`;

const signer = (name) => ({
  key: readFileSync(join(signersDir, `${name}.key`), 'utf8'),
  cert: readFileSync(join(signersDir, `${name}.pem`), 'utf8'),
});

// A TokenCredential that always hands out the admin token (what the SDK needs of a credential).
const staticCredential = (token) => ({
  async getToken() { return { token, expiresOnTimestamp: Date.now() + 3600_000 }; },
});

// A certificate (PEM) as base64 DER, so PEMs with different line wrapping compare equal.
const der = (pem) => new X509Certificate(pem).raw.toString('base64');
const sha1 = (pem) => createHash('sha1').update(new X509Certificate(pem).raw).digest('hex').toUpperCase();

const decodeJws = (jws) => {
  if (typeof jws !== 'string') return null;
  const [h, b] = jws.split('.');
  const dec = (s) => { try { return JSON.parse(Buffer.from(s, 'base64url').toString()); } catch { return Buffer.from(s ?? '', 'base64url').toString(); } };
  return { header: dec(h), body: b ? dec(b) : null };
};

// An error as the SDK raised it, with the request it sent and the server's answer when there was one.
function failure(e) {
  const sent = e.request?.body;
  let sentJws = null;
  try { sentJws = typeof sent === 'string' ? JSON.parse(sent) : null; } catch { sentJws = sent; }
  return {
    error: {
      name: e.name,
      statusCode: e.statusCode ?? null,
      code: e.code ?? null,
      message: String(e.message).slice(0, 600),
      request: e.request ? { method: e.request.method, url: e.request.url, body: sent ?? null, jws: typeof sentJws === 'string' ? sentJws : null, decoded: decodeJws(sentJws) } : null,
      response: e.response ? { status: e.response.status, body: e.response.bodyAsText ?? null } : null,
    },
  };
}
async function attempt(f) {
  try { return { ok: await f() }; } catch (e) { return failure(e); }
}

const policyResult = (r) => ({
  alg: r.token.algorithm,
  resolution: r.body.policyResolution,
  tokenHash: r.body.policyTokenHash ? Buffer.from(r.body.policyTokenHash).toString('base64url') : null,
  signer: r.body.policySigner ? r.body.policySigner.certificates.map(der) : null,
});
const certResult = (r) => ({
  alg: r.token.algorithm,
  resolution: r.body.certificateResolution,
  thumbprint: r.body.certificateThumbprint,
});
const certList = async (client) => (await client.getPolicyManagementCertificates()).body.map((s) => s.certificates.map(der));

const scenarios = {
  async isolated() {
    const first = signer('first');
    const second = signer('second');
    const client = new AttestationAdministrationClient(url, staticCredential(adminToken));
    const out = {
      policy: POLICY,
      firstDer: der(first.cert), secondDer: der(second.cert),
      firstSha1: sha1(first.cert), secondSha1: sha1(second.cert),
    };
    out.certsInitial = await attempt(() => certList(client));

    out.setUnsigned = await attempt(async () => policyResult(await client.setPolicy(SGX, POLICY)));
    out.setSigned = await attempt(async () => policyResult(
      await client.setPolicy(SGX, POLICY, { privateKey: first.key, certificate: first.cert })));
    // How the SDK documents the check: SHA-256 over the signed policy JWS it sent, rebuilt with
    // the SDK's own createAttestationPolicyToken (RS256 PKCS#1 v1.5 signatures are deterministic).
    const sentPolicy = createAttestationPolicyToken(POLICY, first.key, first.cert).serialize();
    out.sentPolicyHeader = decodeJws(sentPolicy).header;
    out.expectedTokenHash = createHash('sha256').update(sentPolicy).digest('base64url');
    out.afterSet = await attempt(async () => (await client.getPolicy(SGX)).body);

    out.resetUnsigned = await attempt(async () => policyResult(await client.resetPolicy(SGX)));
    out.resetForeign = await attempt(async () => policyResult(
      await client.resetPolicy(SGX, { privateKey: second.key, certificate: second.cert })));
    out.afterRefusedResets = await attempt(async () => (await client.getPolicy(SGX)).body);
    out.resetSigned = await attempt(async () => policyResult(
      await client.resetPolicy(SGX, { privateKey: first.key, certificate: first.cert })));
    out.afterReset = await attempt(async () => (await client.getPolicy(SGX)).body);

    out.addUnsigned = await attempt(async () => certResult(
      await client.addPolicyManagementCertificate(second.cert)));
    out.add = await attempt(async () => certResult(
      await client.addPolicyManagementCertificate(second.cert, first.key, first.cert)));
    out.certsAfterAdd = await attempt(() => certList(client));
    out.setBySecond = await attempt(async () => policyResult(
      await client.setPolicy(SGX, POLICY, { privateKey: second.key, certificate: second.cert })));
    out.remove = await attempt(async () => certResult(
      await client.removePolicyManagementCertificate(first.cert, second.key, second.cert)));
    out.certsAfterRemove = await attempt(() => certList(client));
    out.setByRemoved = await attempt(async () => policyResult(
      await client.setPolicy(SGX, POLICY, { privateKey: first.key, certificate: first.cert })));
    out.removeLast = await attempt(async () => certResult(
      await client.removePolicyManagementCertificate(second.cert, second.key, second.cert)));
    return out;
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}: expected one of ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
try {
  process.stdout.write(JSON.stringify(await scenarios[name]()));
} catch (e) {
  process.stdout.write(JSON.stringify(failure(e)));
  process.exitCode = 1;
}

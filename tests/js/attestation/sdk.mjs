// Runs Microsoft's Azure Attestation JavaScript SDK (@azure/attestation 1.0.0), unchanged and with
// its default options (token validation included), against an Enclava server, authenticated with
// @azure/identity's ClientSecretCredential at the server's own token endpoint. Started by
// attestation.test.mjs as a child process so that NODE_EXTRA_CA_CERTS (the server's CA) is set
// before Node starts. Prints one JSON object: what each call returned, or its error.
//
// Usage: node sdk.mjs <scenario>   env: ENCLAVA_URL, ENCLAVA_ADMIN_TOKEN, ENCLAVA_VECTORS
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { ClientSecretCredential } from '@azure/identity';
import {
  AttestationAdministrationClient,
  AttestationClient,
  KnownAttestationType,
} from '@azure/attestation';

const url = process.env.ENCLAVA_URL;
const adminToken = process.env.ENCLAVA_ADMIN_TOKEN;
const vectors = process.env.ENCLAVA_VECTORS;
const ATTEST_SCOPE = 'https://attest.azure.net/.default';
const PERMIT_ALL = 'version=1.0; authorizationrules { => permit(); }; issuancerules {};';
const DRAFT = 'version=1.0; authorizationrules { => permit(); }; ' +
  'issuancerules { => issue(type="draft-marker", value="from-the-draft"); };';
const SGX = KnownAttestationType.SgxEnclave;

const occlum = () => readFileSync(join(vectors, 'sgx', 'trustee', 'occlum_quote.dat'));
const phala = () => readFileSync(join(vectors, 'sgx', 'phala-dcap-qvl', 'sgx_quote'));

async function admin(method, path, body) {
  const r = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path} -> ${r.status}: ${text}`);
  return text ? JSON.parse(text) : {};
}

async function principal(role) {
  const sp = await admin('POST', '/enclava/principals', {
    kind: 'service_principal', display_name: `js-${Math.random().toString(16).slice(2, 10)}`,
  });
  if (role) await admin('POST', '/enclava/role-assignments', { principal: sp.client_id, role, scope: '/' });
  return sp;
}

const credential = (sp) => new ClientSecretCredential('enclava-test-tenant', sp.client_id, sp.client_secret, {
  authorityHost: url,
  disableInstanceDiscovery: true,
});

const payload = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

// An Open Enclave remote report: oe_report_header {version 1, type 2 (remote), size u64} || quote.
function oeReport(quote) {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(1, 0);
  h.writeUInt32LE(2, 4);
  h.writeBigUInt64LE(BigInt(quote.length), 8);
  return Buffer.concat([h, quote]);
}

// An error as the SDK raised it: RestError statusCode / code, or the credential's error name.
const failure = (e) => ({ error: { name: e.name, statusCode: e.statusCode ?? null, code: e.code ?? null, message: String(e.message).slice(0, 400) } });
async function attempt(f) {
  try { return { ok: await f() }; } catch (e) { return failure(e); }
}

const sgxResult = ({ body, token }) => ({
  alg: token.algorithm,
  issuer: body.issuer,
  verifierType: body.verifierType,
  mrEnclave: body.mrEnclave,
  version: body.version,
  policyHash: Buffer.from(body.policyHash ?? []).toString('base64url'),
  claims: payload(token.serialize()),
});

const scenarios = {
  async metadata() {
    const contributor = credential(await principal('AttestationContributor'));
    const tok = await contributor.getToken(ATTEST_SCOPE);
    const kv = await fetch(`${url}/keys?api-version=7.5`, { headers: { Authorization: `Bearer ${tok.token}` } });
    const client = new AttestationClient(url, contributor);
    const md = await client.getOpenIdMetadata();
    const signers = await client.getAttestationSigners();
    return {
      tokenAudience: payload(tok.token).aud,
      keyVaultWithAttestationToken: kv.status,
      metadata: md,
      signers: signers.map((s) => ({ keyId: s.keyId, certificates: s.certificates.length, leaf: s.certificates[0] })),
    };
  },

  async lifecycle() {
    const contributor = credential(await principal('AttestationContributor'));
    const client = new AttestationClient(url, contributor);
    const adminClient = new AttestationAdministrationClient(url, contributor);
    const out = {};
    out.deniedBeforePolicy = await attempt(() => client.attestSgxEnclave(occlum()));
    const got = await adminClient.getPolicy(SGX);
    out.getPolicy = { alg: got.token.algorithm, hasText: typeof got.body === 'string' && got.body.length > 0 };
    const set = await adminClient.setPolicy(SGX, PERMIT_ALL);
    out.setPolicy = { resolution: set.body.policyResolution, alg: set.token.algorithm };
    try {
      out.afterSet = (await adminClient.getPolicy(SGX)).body;
      out.sgx = sgxResult(await client.attestSgxEnclave(occlum()));
      out.openEnclave = sgxResult(await client.attestOpenEnclave(oeReport(occlum())));
      out.draft = sgxResult(await client.attestSgxEnclave(occlum(), { draftPolicyForAttestation: DRAFT }));
      out.expectedPolicyHash = createHash('sha256')
        .update(Buffer.from(PERMIT_ALL).toString('base64url')).digest('base64url');
    } finally {
      const reset = await adminClient.resetPolicy(SGX);
      out.resetPolicy = { resolution: reset.body.policyResolution };
    }
    out.deniedAfterReset = await attempt(() => client.attestSgxEnclave(occlum()));
    return out;
  },

  async mustFail() {
    const contributor = credential(await principal('AttestationContributor'));
    const client = new AttestationClient(url, contributor);
    const nobody = new AttestationClient(url, credential(await principal('CryptoUser')));
    const wrongSp = await principal(null);
    wrongSp.client_secret = (wrongSp.client_secret[0] === 'A' ? 'B' : 'A') + wrongSp.client_secret.slice(1);
    const wrong = new AttestationClient(url, credential(wrongSp));
    const bad = Buffer.from(occlum());
    bad[100] ^= 0xff;
    return {
      draftWithoutRole: await attempt(() => nobody.attestSgxEnclave(occlum(), { draftPolicyForAttestation: PERMIT_ALL })),
      wrongSecret: await attempt(() => wrong.attestSgxEnclave(occlum(), { draftPolicyForAttestation: PERMIT_ALL })),
      expiredCollateral: await attempt(() => client.attestSgxEnclave(phala())),
      tampered: await attempt(() => client.attestSgxEnclave(bad)),
    };
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

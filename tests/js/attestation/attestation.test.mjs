// Microsoft's Azure Attestation JavaScript SDK (@azure/attestation 1.0.0) with @azure/identity's
// ClientSecretCredential, unchanged and with default options, against a real `enclava server
// --dev` in AAD (non-isolated) mode (issue 10, part A). The same calls as
// tests/python/test_attestation_sdk.py; see there why the occlum quote attests (under a policy set
// through the SDK) and the dcap-qvl quote, whose collateral expired, is a failure case.
//
// Each scenario runs in a child `node sdk.mjs <scenario>` with NODE_EXTRA_CA_CERTS = the server's
// CA (Node reads it only at start-up); the child prints what the SDK returned, asserted here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, copyFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { X509Certificate } from 'node:crypto';
import { startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const vectors = resolve(process.env.ENCLAVA_VECTORS ?? join(here, '..', '..', '..', '..', 'shared', 'vectors'));
const OCCLUM_MRENCLAVE = '8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68';
const PHALA_FMSPC = '00a067110000';
const haveVectors = existsSync(join(vectors, 'sgx', 'trustee', 'occlum_quote.dat'))
  && existsSync(join(vectors, 'sgx', 'phala-dcap-qvl', 'sgx_quote_collateral.json'));

let server;

before(async () => {
  if (!haveVectors) return;
  server = await startServer({
    // The dcap-qvl vector's collateral, laid out as the server's collateral directory expects.
    prepare(root) {
      const dir = join(root, 'collateral', 'sgx');
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(vectors, 'sgx', 'phala-dcap-qvl', 'sgx_quote_collateral.json'), join(dir, `${PHALA_FMSPC}.json`));
      return { ENCLAVA_ATTESTATION_COLLATERAL_DIR: join(root, 'collateral') };
    },
  });
});

after(async () => { await server?.stop(); });

function sdk(scenario) {
  return new Promise((resolvePromise, reject) => {
    execFile(process.execPath, [join(here, 'sdk.mjs'), scenario], {
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: server.ca,
        ENCLAVA_URL: server.url,
        ENCLAVA_ADMIN_TOKEN: server.adminToken,
        ENCLAVA_VECTORS: vectors,
      },
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    }, (err, stdout, stderr) => {
      let out;
      try { out = JSON.parse(stdout); } catch {
        reject(new Error(`sdk.mjs ${scenario} printed no JSON (${err?.message ?? 'exit 0'}); stderr:\n${stderr}`));
        return;
      }
      if (err) reject(new Error(`sdk.mjs ${scenario} failed: ${JSON.stringify(out)}\n${stderr}`));
      else resolvePromise(out);
    });
  });
}

const skip = haveVectors ? false : `SGX vectors not found under ${vectors} (set ENCLAVA_VECTORS)`;

test('attestation scope, OpenID metadata and RS256 signing certificates', { skip }, async () => {
  const out = await sdk('metadata');
  assert.equal(out.tokenAudience, 'https://attest.azure.net');
  assert.equal(out.keyVaultWithAttestationToken, 401, 'an attestation token is no Key Vault token');
  assert.equal(out.metadata.issuer, server.url);
  assert.equal(out.metadata.jwks_uri, `${server.url}/certs`);
  assert.ok(out.metadata.id_token_signing_alg_values_supported.includes('RS256'));
  assert.ok(out.signers.length >= 1);
  for (const s of out.signers) {
    assert.ok(s.keyId, 'kid');
    assert.equal(s.certificates, 2, 'x5c: signer certificate, then the CA');
  }
  const leaf = new X509Certificate(out.signers[0].leaf);
  assert.equal(leaf.publicKey.asymmetricKeyType, 'rsa');
});

test('policy get / set / reset and SGX / Open Enclave attestation with a real quote', { skip }, async () => {
  const out = await sdk('lifecycle');
  // Built-in policy: a quote whose TCB was not evaluated is denied.
  assert.equal(out.deniedBeforePolicy.error?.statusCode, 403, JSON.stringify(out.deniedBeforePolicy));
  assert.deepEqual(out.getPolicy, { alg: 'RS256', hasText: true });
  assert.deepEqual(out.setPolicy, { resolution: 'Updated', alg: 'RS256' });
  assert.equal(out.afterSet, 'version=1.0; authorizationrules { => permit(); }; issuancerules {};');
  for (const r of [out.sgx, out.openEnclave]) {
    assert.equal(r.alg, 'RS256');
    assert.equal(r.issuer, server.url);
    assert.equal(r.verifierType, 'sgx');
    assert.equal(r.mrEnclave, OCCLUM_MRENCLAVE);
    assert.equal(r.version, '1.0');
    assert.equal(r.policyHash, out.expectedPolicyHash);
    // MAA's deprecated aliases, still emitted.
    assert.equal(r.claims.ver, '1.0');
    assert.equal(r.claims.tee, 'sgx');
    assert.equal(r.claims.policy_hash, r.claims['x-ms-policy-hash']);
    assert.equal(r.claims['maa-policyHash'], r.claims['x-ms-policy-hash']);
    assert.equal(r.claims['sgx-mrenclave'], OCCLUM_MRENCLAVE);
  }
  // The draft (dry run): unsigned by design, evaluated instead of the stored policy.
  assert.equal(out.draft.alg, 'none');
  assert.equal(out.draft.claims['draft-marker'], 'from-the-draft');
  assert.equal(out.draft.mrEnclave, OCCLUM_MRENCLAVE);
  assert.equal(out.resetPolicy.resolution, 'Removed');
  assert.equal(out.deniedAfterReset.error?.statusCode, 403, JSON.stringify(out.deniedAfterReset));
});

test('calls that must fail', { skip }, async () => {
  const out = await sdk('mustFail');
  if (process.env.ENCLAVA_JS_DEBUG) console.log(JSON.stringify(out, null, 1));
  assert.equal(out.draftWithoutRole.error?.statusCode, 403, JSON.stringify(out.draftWithoutRole));
  // The credential fails at the server's token endpoint (401 invalid_client): no call is made.
  assert.equal(out.wrongSecret.error?.name, 'AuthenticationRequiredError', JSON.stringify(out.wrongSecret));
  assert.match(out.wrongSecret.error.message, /invalid_client/);
  // A real quote whose collateral expired in July 2025: refused at the real time.
  assert.equal(out.expiredCollateral.error?.statusCode, 400, JSON.stringify(out.expiredCollateral));
  assert.equal(out.expiredCollateral.error?.code, 'evidence_invalid');
  assert.match(out.expiredCollateral.error.message, /collateral_expired/);
  assert.equal(out.tampered.error?.statusCode, 400, JSON.stringify(out.tampered));
  assert.equal(out.tampered.error?.code, 'evidence_invalid', JSON.stringify(out.tampered));
});

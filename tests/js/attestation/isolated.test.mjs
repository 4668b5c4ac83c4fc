// Microsoft's Azure Attestation JavaScript SDK (@azure/attestation 1.0.0), unchanged and with its
// default options, against a real `enclava server --dev` in MAA *isolated* mode: trusted policy
// signers configured (ENCLAVA_ATTESTATION_POLICY_SIGNERS, RSA self-signed certificates made here
// with the openssl CLI) and attestation.alg RS256 (the SDK validates RS256 tokens only). The
// JavaScript counterpart of tests/python/test_attestation_policy_management.py: signed setPolicy
// (policy token hash = SHA-256 over the signed policy JWS the SDK sent), unsigned setPolicy /
// resetPolicy refused, a foreign signer refused, signed resetPolicy, and the policy management
// certificates (get / add / remove, signed by a current signer; the last signer stays).
//
// The SDK calls run in a child `node isolated-sdk.mjs isolated` with NODE_EXTRA_CA_CERTS = the
// server's CA; it prints every result, or for a failed call what the SDK sent (JWS, decoded
// header) and what the server answered (status, body), which the assertion messages show.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));

let server;
let signersDir;
let out;

// An RSA-2048 key (PKCS#8 PEM) and its self-signed SHA-256 certificate, valid for a day.
function makeSigner(dir, name, cn) {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '1',
    '-subj', `/CN=${cn}`, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`),
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
}

before(async () => {
  server = await startServer({
    prepare(root) {
      signersDir = join(root, 'signers');
      mkdirSync(signersDir);
      makeSigner(signersDir, 'first', 'enclava js test policy signer 1');
      makeSigner(signersDir, 'second', 'enclava js test policy signer 2');
      return {
        ENCLAVA_ATTESTATION_POLICY_SIGNERS: join(signersDir, 'first.pem'),
        ENCLAVA_ATTESTATION_ALG: 'RS256',
      };
    },
  });
  out = await new Promise((resolvePromise, reject) => {
    execFile(process.execPath, [join(here, 'isolated-sdk.mjs'), 'isolated'], {
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: server.ca,
        ENCLAVA_URL: server.url,
        ENCLAVA_ADMIN_TOKEN: server.adminToken,
        ENCLAVA_SIGNERS: signersDir,
      },
      timeout: 180_000,
      maxBuffer: 16 * 1024 * 1024,
    }, (err, stdout, stderr) => {
      let parsed;
      try { parsed = JSON.parse(stdout); } catch {
        reject(new Error(`isolated-sdk.mjs printed no JSON (${err?.message ?? 'exit 0'}); stderr:\n${stderr}`));
        return;
      }
      if (err) reject(new Error(`isolated-sdk.mjs failed: ${JSON.stringify(parsed)}\n${stderr}`));
      else resolvePromise(parsed);
    });
  });
  if (process.env.ENCLAVA_JS_DEBUG) console.log(JSON.stringify(out, null, 1));
});

after(async () => { await server?.stop(); });

const show = (r) => JSON.stringify(r, null, 1);
// The value of a call that must have succeeded (its failure, with request and answer, otherwise).
function ok(r) {
  assert.ok(r && 'ok' in r, `call failed:\n${show(r)}`);
  return r.ok;
}
// The error of a call that must have been refused with `status` and a body naming `code`.
function refused(r, status, code) {
  assert.ok(r?.error, `call was not refused:\n${show(r)}`);
  assert.equal(r.error.statusCode, status, show(r));
  assert.match(r.error.response?.body ?? r.error.message, new RegExp(code), show(r));
  return r.error;
}

test('the SDK signs policy requests as RS256 JWS with the signer certificate in x5c', () => {
  assert.equal(out.sentPolicyHeader.alg, 'RS256');
  assert.deepEqual(out.sentPolicyHeader.x5c, [out.firstDer]);
});

test('getPolicyManagementCertificates lists the configured signer', () => {
  assert.deepEqual(ok(out.certsInitial), [[out.firstDer]]);
});

test('setPolicy signed by a configured signer: Updated, token hash over the JWS sent, signer echoed', () => {
  const r = ok(out.setSigned);
  assert.equal(r.alg, 'RS256');
  assert.equal(r.resolution, 'Updated');
  assert.equal(r.tokenHash, out.expectedTokenHash, 'SHA-256 over the signed policy JWS the SDK sent');
  assert.deepEqual(r.signer, [out.firstDer]);
  assert.equal(ok(out.afterSet), out.policy);
  // The same JWS, as the SDK put it on the wire, captured when the removed signer sent it again
  // (refused below): its SHA-256 is the hash the server answered.
  const resent = out.setByRemoved.error?.request?.jws;
  assert.ok(resent, show(out.setByRemoved));
  assert.equal(createHash('sha256').update(resent).digest('base64url'), r.tokenHash);
});

test('unsigned setPolicy and resetPolicy are refused (policy_signature_required)', () => {
  refused(out.setUnsigned, 400, 'policy_signature_required');
  const e = refused(out.resetUnsigned, 400, 'policy_signature_required');
  assert.equal(e.request.decoded.header.alg, 'none', 'what the SDK sent: an unsecured JWS');
});

test('resetPolicy signed by a key that is no policy signer is refused (untrusted_policy_signer)', () => {
  refused(out.resetForeign, 403, 'untrusted_policy_signer');
  assert.equal(ok(out.afterRefusedResets), out.policy, 'nothing was reset');
});

test('resetPolicy signed by a configured signer: Removed, signer echoed', () => {
  const r = ok(out.resetSigned);
  assert.equal(r.alg, 'RS256');
  assert.equal(r.resolution, 'Removed');
  assert.deepEqual(r.signer, [out.firstDer]);
  assert.notEqual(ok(out.afterReset), out.policy);
});

test('addPolicyManagementCertificate signed by a current signer (unsigned refused)', () => {
  refused(out.addUnsigned, 400, 'policy_signature_required');
  const r = ok(out.add);
  assert.equal(r.alg, 'RS256');
  assert.equal(r.resolution, 'IsPresent');
  assert.equal(r.thumbprint, out.secondSha1);
  assert.deepEqual([...ok(out.certsAfterAdd)].map((c) => c[0]).sort(), [out.firstDer, out.secondDer].sort());
  assert.equal(ok(out.setBySecond).resolution, 'Updated', 'the added signer can set policies');
});

test('removePolicyManagementCertificate signed by a current signer; the removed one signs nothing; the last stays', () => {
  const r = ok(out.remove);
  assert.equal(r.alg, 'RS256');
  assert.equal(r.resolution, 'IsAbsent');
  assert.equal(r.thumbprint, out.firstSha1);
  assert.deepEqual(ok(out.certsAfterRemove), [[out.secondDer]]);
  refused(out.setByRemoved, 403, 'untrusted_policy_signer');
  refused(out.removeLast, 409, 'last_policy_signer');
});

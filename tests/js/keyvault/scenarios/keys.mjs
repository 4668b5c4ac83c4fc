// KeyClient (@azure/keyvault-keys 4.10.2, default options) against the real server: create every
// key type and curve, import (with non-minimal JWK integers, as Microsoft's SDK tests send), get,
// list, list versions, update, rotate + rotation policy, backup/restore, delete/recover/purge, list
// deleted, random bytes, key attestation.

import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, verify as nodeVerify } from "node:crypto";
import { KnownKeyCurveNames } from "@azure/keyvault-keys";
import { all, credential, keyClient, restError, sha, unb64u, unique, url } from "../lib/sdk.mjs";

const POLL = { intervalInMs: 50 };

// Curve -> (JWS algorithm, digest bits, coordinate bytes, node:crypto JWK curve name).
export const CURVES = {
  "P-256": ["ES256", 256, 32, "P-256"],
  "P-384": ["ES384", 384, 48, "P-384"],
  "P-521": ["ES512", 512, 66, "P-521"],
  "P-256K": ["ES256K", 256, 32, "secp256k1"],
};

/** Check an ECDSA raw r||s signature over `message` with node:crypto (OpenSSL), independently. */
export function ecVerifiesIndependently(key, message, signature) {
  const crv = key.key.crv;
  const [, bits, , nodeCrv] = CURVES[crv];
  const pub = createPublicKey({
    key: { kty: "EC", crv: nodeCrv, x: Buffer.from(key.key.x).toString("base64url"), y: Buffer.from(key.key.y).toString("base64url") },
    format: "jwk",
  });
  return nodeVerify(`sha${bits}`, message, { key: pub, dsaEncoding: "ieee-p1363" }, signature);
}

export async function createEveryTypeAndCurve() {
  const client = keyClient();
  assert.deepEqual(Object.values(KnownKeyCurveNames).sort(), Object.keys(CURVES).sort(), "the SDK knows exactly the four Key Vault curves");
  for (const [crv, [, , coord]] of Object.entries(CURVES)) {
    for (const hsm of [false, true]) {
      const name = unique(`js-ec-${crv.toLowerCase()}`);
      const key = await client.createEcKey(name, { curve: crv, hsm });
      assert.equal(key.name, name);
      assert.equal(key.keyType, hsm ? "EC-HSM" : "EC");
      assert.equal(key.key.crv, crv);
      assert.equal(key.key.x.length, coord, `${crv}: x at the curve's fixed length`);
      assert.equal(key.key.y.length, coord, `${crv}: y at the curve's fixed length`);
      assert.equal(key.key.d, undefined, "private material is never returned");
      assert.ok(key.id.startsWith(`${url}/keys/${name}/`), key.id);
      // JWK round trip: get returns the same public key.
      const got = await client.getKey(name);
      assert.deepEqual(Buffer.from(got.key.x), Buffer.from(key.key.x));
      assert.deepEqual(Buffer.from(got.key.y), Buffer.from(key.key.y));
      assert.equal(got.key.crv, crv);
    }
  }
  for (const keySize of [2048, 3072, 4096]) {
    const key = await client.createRsaKey(unique("js-rsa"), { keySize });
    assert.equal(key.keyType, "RSA");
    assert.equal(key.key.n.length * 8, keySize);
    assert.deepEqual([...key.key.e], [1, 0, 1]);
  }
  const rsaHsm = await client.createRsaKey(unique("js-rsa-hsm"), { hsm: true, publicExponent: 65537 });
  assert.equal(rsaHsm.keyType, "RSA-HSM");
  for (const keySize of [128, 192, 256]) {
    const oct = await client.createOctKey(unique("js-oct"), { keySize, hsm: true });
    assert.equal(oct.keyType, "oct-HSM");
    assert.equal(oct.key.k, undefined, "symmetric material is never returned");
  }
  // The generic createKey with an explicit type.
  const generic = await client.createKey(unique("js-generic"), "EC", { curve: "P-521", keyOps: ["sign", "verify"], tags: { env: "test" } });
  assert.equal(generic.key.crv, "P-521");
  assert.deepEqual(generic.keyOperations, ["sign", "verify"]);
  assert.deepEqual(generic.properties.tags, { env: "test" });
  assert.ok(generic.properties.recoverableDays > 0);
  assert.ok(generic.properties.recoveryLevel);
  // An unknown curve is the caller's mistake: 400 naming the curves.
  const e = await restError(client.createEcKey(unique("js-bad"), { curve: "P-192" }));
  assert.equal(e.statusCode, 400);
  assert.match(e.message, /expected P-256, P-384, P-521 or P-256K/);
  assert.ok(credential.scopes.flat().includes("https://vault.azure.net/.default"), JSON.stringify(credential.scopes));
}

/** Prefix a zero byte (a non-minimal big-endian integer, the same value). */
const lz = (b) => Buffer.concat([Buffer.from([0]), Buffer.from(b)]);

function rsaJwk(privateKey) {
  const j = privateKey.export({ format: "jwk" });
  const f = (s) => unb64u(s);
  return { kty: "RSA", n: f(j.n), e: f(j.e), d: f(j.d), p: f(j.p), q: f(j.q), dp: f(j.dp), dq: f(j.dq), qi: f(j.qi) };
}

export async function importKeys() {
  const client = keyClient();
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const message = Buffer.from("imported through the JavaScript SDK");
  // Every RSA component with and without a leading zero byte (Microsoft's SDK tests send n so).
  for (const field of [null, "n", "e", "d", "p", "q", "dp", "dq", "qi"]) {
    const jwk = rsaJwk(privateKey);
    if (field) jwk[field] = lz(jwk[field]);
    const name = unique(`js-imp-rsa-${field ?? "plain"}`);
    const key = await client.importKey(name, { ...jwk, keyOps: ["sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey"] }, { hardwareProtected: field === "n" });
    assert.equal(key.keyType, field === "n" ? "RSA-HSM" : "RSA");
    assert.deepEqual(Buffer.from(key.key.n), unb64u(publicKey.export({ format: "jwk" }).n), `${field}: n comes back minimal`);
    assert.equal(key.key.d, undefined);
    const crypto = client.getCryptographyClient(name);
    const sig = await crypto.signData("RS256", message);
    assert.ok(nodeVerify("sha256", message, publicKey, Buffer.from(sig.result)), `${field}: the server signed as the imported key`);
  }
  // EC on every curve, with fixed-length fields, with a leading zero, and shortened when the top
  // byte is zero (a minimal encoding some JWK producers emit).
  for (const [crv, [alg, , coord, nodeCrv]] of Object.entries(CURVES)) {
    const forms = [["plain", (b) => b], ["leading-zero", lz], ["minimal", (b) => Buffer.from(b).subarray(Buffer.from(b).findIndex((x) => x !== 0))]];
    for (const [form, shape] of forms) {
      const { privateKey: ecPriv } = generateKeyPairSync("ec", { namedCurve: nodeCrv === "P-256" ? "prime256v1" : nodeCrv === "P-384" ? "secp384r1" : nodeCrv === "P-521" ? "secp521r1" : "secp256k1" });
      const j = ecPriv.export({ format: "jwk" });
      const fixed = (s) => {
        const b = unb64u(s);
        return Buffer.concat([Buffer.alloc(coord - b.length), b]);
      };
      const jwk = { kty: "EC", crv, x: shape(fixed(j.x)), y: shape(fixed(j.y)), d: shape(fixed(j.d)), keyOps: ["sign", "verify"] };
      const name = unique(`js-imp-${crv.toLowerCase()}-${form}`);
      const key = await client.importKey(name, jwk);
      assert.equal(key.key.crv, crv);
      assert.deepEqual(Buffer.from(key.key.x), fixed(j.x), `${crv} ${form}: x at the fixed length`);
      assert.deepEqual(Buffer.from(key.key.y), fixed(j.y), `${crv} ${form}: y at the fixed length`);
      const sig = await client.getCryptographyClient(name).signData(alg, message);
      assert.equal(sig.result.length, 2 * coord);
      assert.ok(ecVerifiesIndependently(key, message, Buffer.from(sig.result)), `${crv} ${form}`);
    }
  }
  // oct.
  const oct = await client.importKey(unique("js-imp-oct"), { kty: "oct", k: Buffer.alloc(32, 7) });
  assert.equal(oct.keyType, "oct");
  // A key that does not fit its curve is a 400 naming the field.
  const e = await restError(client.importKey(unique("js-imp-bad"), { kty: "EC", crv: "P-256", x: Buffer.alloc(33, 1), y: Buffer.alloc(32, 1), d: Buffer.alloc(32, 1) }));
  assert.equal(e.statusCode, 400);
  assert.match(e.message, /invalid key\.x: expected at most 32 significant bytes, found 33/);
}

export async function getListVersionsUpdate() {
  const client = keyClient();
  const name = unique("js-versions");
  const created = [];
  for (let i = 0; i < 5; i++) created.push(await client.createEcKey(name, { curve: "P-256" }));
  const latest = await client.getKey(name);
  assert.equal(latest.properties.version, created[4].properties.version);
  const first = await client.getKey(name, { version: created[0].properties.version });
  assert.deepEqual(Buffer.from(first.key.x), Buffer.from(created[0].key.x));
  // Paging through versions, two per page.
  const pages = [];
  for await (const page of client.listPropertiesOfKeyVersions(name).byPage({ maxPageSize: 2 })) pages.push(page);
  assert.ok(pages.length >= 3, `5 versions at 2 per page: ${pages.length} pages`);
  assert.deepEqual(pages.flat().map((p) => p.version).sort(), created.map((k) => k.properties.version).sort());
  // Versions of a key that does not exist: an empty list, as Key Vault answers (was 404).
  assert.deepEqual(await all(client.listPropertiesOfKeyVersions(unique("js-no-such-key"))), []);
  // The key is listed.
  const names = (await all(client.listPropertiesOfKeys())).map((p) => p.name);
  assert.ok(names.includes(name));
  // Update properties of the latest and of one version.
  const expiresOn = new Date(Date.now() + 86400 * 1000);
  expiresOn.setMilliseconds(0);
  const updated = await client.updateKeyProperties(name, { tags: { a: "1" }, expiresOn, keyOps: ["verify"] });
  assert.deepEqual(updated.properties.tags, { a: "1" });
  assert.equal(updated.properties.expiresOn.getTime(), expiresOn.getTime());
  assert.deepEqual(updated.keyOperations, ["verify"]);
  const disabled = await client.updateKeyProperties(name, created[0].properties.version, { enabled: false });
  assert.equal(disabled.properties.enabled, false);
  assert.equal(disabled.properties.version, created[0].properties.version);
  // A disabled version refuses operations (403 Forbidden).
  const e = await restError(client.getCryptographyClient(name, { keyVersion: created[0].properties.version }).sign("ES256", sha(256, "x")));
  assert.equal(e.statusCode, 403);
  // A missing key is a 404 KeyNotFound.
  const nf = await restError(client.getKey(unique("js-missing")));
  assert.equal(nf.statusCode, 404);
  assert.equal(nf.code, "KeyNotFound");
}

export async function rotateAndRotationPolicy() {
  const client = keyClient();
  const name = unique("js-rotate");
  const key = await client.createRsaKey(name, { keySize: 2048 });
  const rotated = await client.rotateKey(name);
  assert.notEqual(rotated.properties.version, key.properties.version);
  assert.notDeepEqual(Buffer.from(rotated.key.n), Buffer.from(key.key.n));
  const versions = (await all(client.listPropertiesOfKeyVersions(name))).map((p) => p.version).sort();
  assert.deepEqual(versions, [key.properties.version, rotated.properties.version].sort());
  const policy = await client.updateKeyRotationPolicy(name, {
    lifetimeActions: [
      { action: "Rotate", timeAfterCreate: "P30D" },
      { action: "Notify", timeBeforeExpiry: "P7D" },
    ],
    expiresIn: "P90D",
  });
  assert.equal(policy.expiresIn, "P90D");
  const got = await client.getKeyRotationPolicy(name);
  assert.equal(got.expiresIn, "P90D");
  const actions = Object.fromEntries(got.lifetimeActions.map((a) => [a.action, a]));
  assert.equal(actions.Rotate.timeAfterCreate, "P30D");
  assert.equal(actions.Notify.timeBeforeExpiry, "P7D");
  assert.ok(got.id, "the policy has an id");
}

export async function backupRestoreDeleteRecoverPurge() {
  const client = keyClient();
  // Delete -> deleted key -> listed as deleted -> recover.
  const name = unique("js-delete");
  const key = await client.createEcKey(name, { curve: "P-256K" });
  const deleted = await (await client.beginDeleteKey(name, POLL)).pollUntilDone();
  assert.equal(deleted.name, name);
  assert.ok(deleted.properties.recoveryId.includes(name));
  assert.ok(deleted.properties.deletedOn instanceof Date);
  assert.ok(deleted.properties.scheduledPurgeDate > deleted.properties.deletedOn);
  assert.equal((await restError(client.getKey(name))).statusCode, 404);
  assert.equal((await client.getDeletedKey(name)).name, name);
  assert.ok((await all(client.listDeletedKeys())).some((d) => d.name === name));
  const recovered = await (await client.beginRecoverDeletedKey(name, POLL)).pollUntilDone();
  assert.equal(recovered.id, key.id);
  assert.deepEqual(Buffer.from((await client.getKey(name)).key.x), Buffer.from(key.key.x));

  // Backup -> delete -> purge -> restore: the same private key comes back.
  const message = Buffer.from("survives backup");
  const backup = await client.backupKey(name);
  assert.ok(backup instanceof Uint8Array && backup.length > 0);
  assert.equal(Buffer.from(backup).indexOf(Buffer.from(key.key.x)), -1, "the backup is opaque");
  await (await client.beginDeleteKey(name, POLL)).pollUntilDone();
  await client.purgeDeletedKey(name);
  assert.equal((await restError(client.getDeletedKey(name))).statusCode, 404);
  const restored = await client.restoreKeyBackup(backup);
  assert.equal(restored.id, key.id);
  const sig = await client.getCryptographyClient(name).signData("ES256K", message);
  assert.ok(ecVerifiesIndependently(key, message, Buffer.from(sig.result)), "restored key signs as the original");
  // Restoring over an existing key is a conflict; garbage is a 400.
  assert.equal((await restError(client.restoreKeyBackup(backup))).statusCode, 409);
  assert.equal((await restError(client.restoreKeyBackup(Buffer.from("not a backup")))).statusCode, 400);
}

export async function randomBytes() {
  const client = keyClient();
  const a = await client.getRandomBytes(32);
  const b = await client.getRandomBytes(32);
  assert.equal(a.length, 32);
  assert.notDeepEqual(Buffer.from(a), Buffer.from(b));
  assert.equal((await client.getRandomBytes(1)).length, 1);
  assert.equal((await restError(client.getRandomBytes(0))).statusCode, 400);
}

export async function keyAttestation() {
  const client = keyClient();
  const name = unique("js-attestation");
  await client.createEcKey(name, { curve: "P-256", hsm: true });
  // Routed (it was read as version "attestation" and answered 404): 501 until key attestation
  // exists, naming what is missing.
  for (const options of [{}, { version: (await client.getKey(name)).properties.version }]) {
    const e = await restError(client.getKeyAttestation(name, options));
    assert.equal(e.statusCode, 501, e.message);
    assert.equal(e.code, "NotImplemented");
    assert.match(e.message, /no HSM attestation statement or certificate chain/);
  }
  assert.equal((await restError(client.getKeyAttestation(unique("js-missing")))).statusCode, 404);
}

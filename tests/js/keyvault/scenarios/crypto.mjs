// CryptographyClient (@azure/keyvault-keys 4.10.2): encrypt/decrypt, wrap/unwrap, sign/verify on
// every key type, remote and — where the SDK does it — locally (RSA encrypt/wrap/verify with the
// downloaded public key; AES-CBC with a local JsonWebKey). Results are checked against node:crypto.

import assert from "node:assert/strict";
import { constants, createCipheriv, createDecipheriv, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, verify as nodeVerify, createPublicKey } from "node:crypto";
import { CryptographyClient } from "@azure/keyvault-keys";
import { credential, clientOptions, keyClient, restError, sha, unique } from "../lib/sdk.mjs";
import { CURVES, ecVerifiesIndependently } from "./keys.mjs";

function rsaPublic(key) {
  return createPublicKey({ key: { kty: "RSA", n: Buffer.from(key.key.n).toString("base64url"), e: Buffer.from(key.key.e).toString("base64url") }, format: "jwk" });
}

export async function rsaEncryptWrapSignVerify() {
  const client = keyClient();
  // Import a key this test holds, so results can be checked with its private half.
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const j = privateKey.export({ format: "jwk" });
  const f = (s) => Buffer.from(s, "base64url");
  const name = unique("js-crypto-rsa");
  const key = await client.importKey(name, { kty: "RSA", n: f(j.n), e: f(j.e), d: f(j.d), p: f(j.p), q: f(j.q), dp: f(j.dp), dq: f(j.dq), qi: f(j.qi) });
  // Hybrid client (from the KeyVaultKey): RSA1_5/RSA-OAEP encrypt and wrap run locally in the SDK,
  // RSA-OAEP-256 and every private operation on the server.
  const crypto = new CryptographyClient(key, credential, clientOptions);
  const byId = new CryptographyClient(key.id, credential, clientOptions);
  const plaintext = Buffer.from("RSA through the JavaScript SDK");
  const padding = {
    "RSA1_5": { padding: constants.RSA_PKCS1_PADDING },
    "RSA-OAEP": { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" },
    "RSA-OAEP-256": { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
  };
  for (const alg of ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"]) {
    for (const c of [crypto, byId]) {
      const enc = await c.encrypt({ algorithm: alg, plaintext });
      assert.equal(enc.result.length, 256);
      // Node 20 refuses PKCS#1 v1.5 private decryption (CVE-2023-46809): RSA1_5 is checked the
      // other way round below (node:crypto encrypts, the server decrypts).
      if (alg !== "RSA1_5") {
        assert.deepEqual(privateDecrypt({ key: privateKey, ...padding[alg] }, enc.result), plaintext, `${alg}: decrypts independently`);
      }
      const dec = await c.decrypt({ algorithm: alg, ciphertext: enc.result });
      assert.deepEqual(Buffer.from(dec.result), plaintext, alg);
      // What node:crypto encrypts, the server decrypts.
      const theirs = publicEncrypt({ key: publicKey, ...padding[alg] }, plaintext);
      assert.deepEqual(Buffer.from((await c.decrypt({ algorithm: alg, ciphertext: theirs })).result), plaintext, alg);
      const cek = randomBytes(32);
      const wrapped = await c.wrapKey(alg, cek);
      if (alg !== "RSA1_5") {
        assert.deepEqual(privateDecrypt({ key: privateKey, ...padding[alg] }, wrapped.result), cek, `${alg} wrap`);
      }
      assert.deepEqual(Buffer.from((await c.unwrapKey(alg, wrapped.result)).result), cek, `${alg} unwrap`);
    }
  }
  // Signatures: sign on the server, verify locally (RS*/PS*) and independently.
  for (const alg of ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]) {
    const bits = Number(alg.slice(2));
    const message = Buffer.from(`message for ${alg}`);
    const digest = sha(bits, message);
    const sig = await crypto.sign(alg, digest);
    const pad = alg.startsWith("PS") ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: bits / 8 } : {};
    assert.ok(nodeVerify(`sha${bits}`, message, { key: rsaPublic(key), ...pad }, Buffer.from(sig.result)), `${alg}: independent`);
    assert.equal((await crypto.verify(alg, digest, sig.result)).result, true, alg);
    assert.equal((await crypto.verify(alg, sha(bits, "other"), sig.result)).result, false, alg);
    const data = await crypto.signData(alg, message);
    assert.ok(nodeVerify(`sha${bits}`, message, { key: rsaPublic(key), ...pad }, Buffer.from(data.result)), `${alg}: signData`);
    // The SDK verifies RS*/PS* data locally; its local provider (4.10.2) always checks PKCS#1 v1.5
    // padding, so only RS* verifies locally (PS* was checked above, remotely and independently).
    if (alg.startsWith("RS")) {
      assert.equal((await crypto.verifyData(alg, message, data.result)).result, true, alg);
    }
  }
}

export async function ecSignVerifyEveryCurve() {
  const client = keyClient();
  for (const [crv, [alg, bits, coord]] of Object.entries(CURVES)) {
    const key = await client.createEcKey(unique(`js-crypto-${crv.toLowerCase()}`), { curve: crv });
    const crypto = new CryptographyClient(key, credential, clientOptions);
    const message = Buffer.from(`message on ${crv}`);
    const digest = sha(bits, message);
    const sig = await crypto.sign(alg, digest);
    assert.equal(sig.result.length, 2 * coord, `${crv}: raw r||s`);
    assert.ok(ecVerifiesIndependently(key, message, Buffer.from(sig.result)), `${crv}: independent`);
    assert.equal((await crypto.verify(alg, digest, sig.result)).result, true, crv);
    assert.equal((await crypto.verify(alg, sha(bits, "other"), sig.result)).result, false, crv);
    const data = await crypto.signData(alg, message);
    assert.ok(ecVerifiesIndependently(key, message, Buffer.from(data.result)), `${crv}: signData`);
    assert.equal((await crypto.verifyData(alg, message, data.result)).result, true, crv);
    // Wrong digest length for the algorithm: 400.
    const e = await restError(crypto.sign(alg, Buffer.alloc(bits / 8 + 1)));
    assert.equal(e.statusCode, 400);
  }
}

export async function aesEncryptWrap() {
  const client = keyClient();
  for (const bits of [128, 192, 256]) {
    const k = randomBytes(bits / 8);
    const name = unique(`js-crypto-aes${bits}`);
    const key = await client.importKey(name, { kty: "oct-HSM", k });
    const crypto = new CryptographyClient(key, credential, clientOptions);
    const plaintext = Buffer.from(`AES-${bits} through the JavaScript SDK`);
    // GCM: the server generates the iv; aad is authenticated.
    const gcm = `A${bits}GCM`;
    const aad = Buffer.from("header v1");
    const enc = await crypto.encrypt({ algorithm: gcm, plaintext, additionalAuthenticatedData: aad });
    assert.equal(enc.iv.length, 12);
    assert.equal(enc.authenticationTag.length, 16);
    const d = createDecipheriv(`aes-${bits}-gcm`, k, enc.iv);
    d.setAAD(aad);
    d.setAuthTag(enc.authenticationTag);
    assert.deepEqual(Buffer.concat([d.update(enc.result), d.final()]), plaintext, `${gcm}: independent`);
    const dec = await crypto.decrypt({ algorithm: gcm, ciphertext: enc.result, iv: enc.iv, authenticationTag: enc.authenticationTag, additionalAuthenticatedData: aad });
    assert.deepEqual(Buffer.from(dec.result), plaintext);
    const bad = await restError(crypto.decrypt({ algorithm: gcm, ciphertext: enc.result, iv: enc.iv, authenticationTag: enc.authenticationTag, additionalAuthenticatedData: Buffer.from("other") }));
    assert.equal(bad.statusCode, 400, "GCM binds its aad");
    // CBC and CBCPAD: remote, with and without aad (Key Vault ignores aad for CBC; it was a 400),
    // and locally with a JsonWebKey holding k.
    const local = new CryptographyClient({ kty: "oct", k, keyOps: ["encrypt", "decrypt"] });
    for (const alg of [`A${bits}CBC`, `A${bits}CBCPAD`]) {
      const padded = alg.endsWith("PAD");
      const iv = randomBytes(16);
      const pt = padded ? plaintext : Buffer.alloc(32, 9);
      const remoteEnc = await crypto.encrypt({ algorithm: alg, plaintext: pt, iv });
      const withAad = await crypto.encrypt({ algorithm: alg, plaintext: pt, iv, additionalAuthenticatedData: aad });
      assert.deepEqual(Buffer.from(withAad.result), Buffer.from(remoteEnc.result), `${alg}: aad ignored, not folded in`);
      const c = createCipheriv(`aes-${bits}-cbc`, k, iv);
      c.setAutoPadding(padded);
      assert.deepEqual(Buffer.from(remoteEnc.result), Buffer.concat([c.update(pt), c.final()]), `${alg}: independent`);
      const remoteDec = await crypto.decrypt({ algorithm: alg, ciphertext: remoteEnc.result, iv, additionalAuthenticatedData: aad });
      assert.deepEqual(Buffer.from(remoteDec.result), pt, alg);
      if (padded) {
        // The SDK's local AES provider implements the PAD variants only.
        const localEnc = await local.encrypt({ algorithm: alg, plaintext: pt, iv });
        assert.deepEqual(Buffer.from(localEnc.result), Buffer.from(remoteEnc.result), `${alg}: local = remote`);
        assert.deepEqual(Buffer.from((await local.decrypt({ algorithm: alg, ciphertext: remoteEnc.result, iv })).result), pt);
      }
    }
    // Key wrap (RFC 3394) on the server.
    const cek = randomBytes(32);
    const kw = `A${bits}KW`;
    const wrapped = await crypto.wrapKey(kw, cek);
    assert.equal(wrapped.result.length, 40);
    const w = createDecipheriv(`id-aes${bits}-wrap`, k, Buffer.from("A6A6A6A6A6A6A6A6", "hex"));
    assert.deepEqual(Buffer.concat([w.update(wrapped.result), w.final()]), cek, `${kw}: independent`);
    assert.deepEqual(Buffer.from((await crypto.unwrapKey(kw, wrapped.result)).result), cek);
  }
}

export async function keyOpsAreEnforced() {
  const client = keyClient();
  const name = unique("js-crypto-ops");
  const key = await client.createRsaKey(name, { keySize: 2048 });
  // The SDK checks key_ops itself when it knows them; a client built from the key as it was
  // before the update sends the request, so the server's own check is what refuses it.
  const stale = new CryptographyClient(key, credential, clientOptions);
  const updated = await client.updateKeyProperties(name, { keyOps: ["sign", "verify"] });
  assert.deepEqual(updated.keyOperations, ["sign", "verify"]);
  const e = await restError(stale.decrypt({ algorithm: "RSA-OAEP-256", ciphertext: Buffer.alloc(256, 1) }));
  assert.equal(e.statusCode, 403, e.message);
  const sig = await stale.sign("PS256", sha(256, "ok"));
  assert.equal((await stale.verify("PS256", sha(256, "ok"), sig.result)).result, true);
  // A fresh client refuses locally, before any request, with the SDK's own message.
  const fresh = new CryptographyClient(key.id, credential, clientOptions);
  await assert.rejects(fresh.decrypt({ algorithm: "RSA-OAEP-256", ciphertext: Buffer.alloc(256, 1) }), /not supported on key/);
}

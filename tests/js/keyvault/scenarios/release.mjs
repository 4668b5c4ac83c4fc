// Secure key release through KeyClient.releaseKey (@azure/keyvault-keys 4.10.2), checked
// independently of Enclava's code with node:crypto: the JWS signature with its x5c leaf, the leaf
// against the server's CA, and key_hsm unwrapped by the documented layout (RSA-OAEP with
// SHA-1/256/384 over the first 256 bytes, then AES key unwrap with padding, RFC 5649).
//
// Attestation tokens come from the test issuer lib/server.mjs configures as trusted
// (ENCLAVA_TRUSTED_ISSUERS); they carry an RSA key this scenario holds in x-ms-runtime.keys.

import assert from "node:assert/strict";
import { X509Certificate, constants, createDecipheriv, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, privateDecrypt, verify as nodeVerify } from "node:crypto";
import { readFileSync } from "node:fs";
import { CryptographyClient } from "@azure/keyvault-keys";
import { attestationToken, b64u, credential, clientOptions, keyClient, restError, unb64u, unique } from "../lib/sdk.mjs";

const { privateKey: holder, publicKey: holderPub } = generateKeyPairSync("rsa", { modulusLength: 2048 });

function token(extra = {}) {
  const pub = holderPub.export({ format: "jwk" });
  return attestationToken({
    "x-ms-attestation-type": "sevsnpvm",
    "x-ms-sevsnpvm-is-debuggable": false,
    "x-ms-sevsnpvm-vmpl": 0,
    "x-ms-runtime": {
      keys: [
        { kty: "EC", kid: "not-this-one", crv: "P-256", key_ops: ["encrypt"], x: "AA", y: "AA" },
        { kty: "RSA", kid: "holder-1", key_ops: ["encrypt"], n: pub.n, e: pub.e },
      ],
    },
    ...extra,
  });
}

const POLICY = {
  version: "1.0.0",
  anyOf: [
    {
      authority: process.env.ENCLAVA_ATTESTATION_ISSUER,
      allOf: [
        { claim: "x-ms-attestation-type", equals: "sevsnpvm" },
        { claim: "x-ms-sevsnpvm-is-debuggable", equals: "false" },
        { claim: "x-ms-sevsnpvm-vmpl", equals: "0" },
      ],
    },
  ],
};
const releasePolicy = () => ({ encodedPolicy: new TextEncoder().encode(JSON.stringify(POLICY)), contentType: "application/json; charset=utf-8" });

const OAEP_HASH = { undefined: "sha1", CKM_RSA_AES_KEY_WRAP: "sha1", RSA_AES_KEY_WRAP_256: "sha256", RSA_AES_KEY_WRAP_384: "sha384" };

/** Check the JWS and unwrap key_hsm. Returns [payload, released key material]. */
function openRelease(jws, algorithm) {
  const [h64, p64, s64] = jws.split(".");
  const header = JSON.parse(unb64u(h64));
  const payload = JSON.parse(unb64u(p64));
  assert.equal(header.alg, "RS256");
  const chain = header.x5c.map((c) => new X509Certificate(Buffer.from(c, "base64")));
  const leaf = chain[0];
  assert.equal(header["x5t#S256"], b64u(createHash("sha256").update(leaf.raw).digest()));
  assert.ok(nodeVerify("sha256", Buffer.from(`${h64}.${p64}`), leaf.publicKey, unb64u(s64)), "JWS signature by the x5c leaf");
  const ca = new X509Certificate(readFileSync(process.env.NODE_EXTRA_CA_CERTS));
  assert.ok(leaf.verify(ca.publicKey), "the leaf is issued by the server's CA");
  assert.ok(leaf.checkHost("localhost"), "the leaf names the server's host");

  const key = payload.response.key.key;
  const kh = JSON.parse(unb64u(key.key_hsm));
  const enc = algorithm ?? "CKM_RSA_AES_KEY_WRAP";
  assert.equal(kh.header.enc, enc);
  assert.equal(kh.header.kid, "holder-1");
  assert.equal(payload.request.enc, enc);
  const ct = unb64u(kh.ciphertext);
  const aes = privateDecrypt({ key: holder, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: OAEP_HASH[algorithm] }, ct.subarray(0, 256));
  assert.equal(aes.length, 32);
  const d = createDecipheriv("id-aes256-wrap-pad", aes, Buffer.from("A65959A6", "hex"));
  return [payload, Buffer.concat([d.update(ct.subarray(256)), d.final()])];
}

export async function releaseOctKeyEveryAlgorithm() {
  const client = keyClient();
  for (const algorithm of [undefined, "CKM_RSA_AES_KEY_WRAP", "RSA_AES_KEY_WRAP_256", "RSA_AES_KEY_WRAP_384"]) {
    const name = unique("js-release-oct");
    const key = await client.createOctKey(name, { keySize: 256, hsm: true, exportable: true, releasePolicy: releasePolicy() });
    assert.equal(key.properties.exportable, true);
    const result = await client.releaseKey(name, token(), { nonce: "n-123", ...(algorithm ? { algorithm } : {}) });
    const [payload, material] = openRelease(result.value, algorithm);
    assert.equal(payload.request.nonce, "n-123");
    assert.equal(payload.response.key.key.kid, key.id);
    assert.equal(material.length, 32);
    // The released material is the key: the vault's A256GCM ciphertext opens with it locally.
    const aad = Buffer.from("release-check");
    const enc = await new CryptographyClient(key, credential, clientOptions).encrypt({ algorithm: "A256GCM", plaintext: Buffer.from("released"), additionalAuthenticatedData: aad });
    const d = createDecipheriv("aes-256-gcm", material, enc.iv);
    d.setAAD(aad);
    d.setAuthTag(enc.authenticationTag);
    assert.equal(Buffer.concat([d.update(enc.result), d.final()]).toString(), "released");
  }
}

export async function releaseRsaAndEcKeys() {
  const client = keyClient();
  const rsaName = unique("js-release-rsa");
  const rsa = await client.createRsaKey(rsaName, { keySize: 2048, hsm: true, exportable: true, releasePolicy: releasePolicy() });
  const r = await client.releaseKey(rsaName, token(), { version: rsa.properties.version, algorithm: "RSA_AES_KEY_WRAP_256" });
  const [payload, der] = openRelease(r.value, "RSA_AES_KEY_WRAP_256");
  const released = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" })).export({ format: "jwk" });
  assert.equal(released.n, b64u(rsa.key.n));
  assert.equal(payload.response.key.key.n, b64u(rsa.key.n));

  for (const curve of ["P-256", "P-384", "P-521", "P-256K"]) {
    const name = unique(`js-release-${curve.toLowerCase()}`);
    const ec = await client.createEcKey(name, { curve, hsm: true, exportable: true, releasePolicy: releasePolicy() });
    const [, ecDer] = openRelease((await client.releaseKey(name, token())).value, undefined);
    const pub = createPublicKey(createPrivateKey({ key: ecDer, format: "der", type: "pkcs8" })).export({ format: "jwk" });
    assert.equal(pub.x, b64u(ec.key.x), curve);
    assert.equal(pub.y, b64u(ec.key.y), curve);
  }
}

export async function releaseRefusals() {
  const client = keyClient();
  const name = unique("js-release-deny");
  await client.createOctKey(name, { keySize: 256, hsm: true, exportable: true, releasePolicy: releasePolicy() });
  const denied = await restError(client.releaseKey(name, token({ "x-ms-sevsnpvm-is-debuggable": true })));
  assert.equal(denied.statusCode, 403);
  assert.match(denied.message, /x-ms-sevsnpvm-is-debuggable/);
  const now = Math.floor(Date.now() / 1000);
  const expired = await restError(client.releaseKey(name, token({ exp: now - 3600, nbf: now - 7200 })));
  assert.equal(expired.statusCode, 403);
  assert.match(expired.message, /expired/);
  const untrusted = await restError(client.releaseKey(name, token({ iss: "https://attest.elsewhere.invalid" })));
  assert.equal(untrusted.statusCode, 403);
  assert.match(untrusted.message, /not trusted/);
  const noKey = await restError(client.releaseKey(name, token({ "x-ms-runtime": { keys: [] } })));
  assert.equal(noKey.statusCode, 400);
  assert.match(noKey.message, /x-ms-runtime\.keys/);
  assert.equal((await restError(client.releaseKey(name, "not.a.token"))).statusCode >= 400, true);
  // Exportable keys need a release policy; non-exportable keys are never released.
  assert.equal((await restError(client.createOctKey(unique("js-release-nopolicy"), { keySize: 256, hsm: true, exportable: true }))).statusCode, 400);
  const plain = unique("js-release-plain");
  await client.createOctKey(plain, { keySize: 256, hsm: true });
  const e = await restError(client.releaseKey(plain, token()));
  assert.ok(e.statusCode === 400 || e.statusCode === 403, `${e.statusCode}: ${e.message}`);
}

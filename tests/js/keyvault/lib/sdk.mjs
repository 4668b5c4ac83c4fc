// Scenario side (runs in the child process started by lib/server.mjs): the unmodified SDK clients
// pointed at the test server, plus the few helpers the scenarios share.

import { createHash, createPrivateKey, randomUUID, sign as nodeSign } from "node:crypto";
import { readFileSync } from "node:fs";
import { KeyClient } from "@azure/keyvault-keys";
import { SecretClient } from "@azure/keyvault-secrets";

export const url = must("ENCLAVA_URL");

function must(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (scenarios run through lib/server.mjs)`);
  return v;
}

/**
 * A TokenCredential returning the server's bootstrap administrator token (as the Python suite's
 * StaticTokenCredential). Records the scopes the SDK asked for.
 */
export class StaticTokenCredential {
  constructor(token) {
    this.token = token;
    this.scopes = [];
  }
  async getToken(scopes) {
    this.scopes.push(scopes);
    return { token: this.token, expiresOnTimestamp: Date.now() + 3600 * 1000 };
  }
}

export function adminToken() {
  return readFileSync(must("ENCLAVA_TOKEN_FILE"), "utf8").trim();
}

export const credential = new StaticTokenCredential(adminToken());

// The one non-default option: the server is not *.vault.azure.net, so the SDK's check that the
// challenge's resource matches the vault host must be off (Python: verify_challenge_resource=False).
export const clientOptions = { disableChallengeResourceVerification: true };

export const keyClient = () => new KeyClient(url, credential, clientOptions);
export const secretClient = () => new SecretClient(url, credential, clientOptions);

/** A Key Vault name unique to this run (letters, digits and dashes). */
export const unique = (base) => `${base}-${randomUUID().slice(0, 8)}`;

export const b64u = (buf) => Buffer.from(buf).toString("base64url");
export const unb64u = (s) => Buffer.from(s, "base64url");
export const sha = (bits, data) => createHash(`sha${bits}`).update(data).digest();

/** Collect an async iterable. */
export async function all(iter) {
  const out = [];
  for await (const x of iter) out.push(x);
  return out;
}

/** The RestError an SDK call rejects with (fails if it resolves). */
export async function restError(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error("expected the call to fail, it succeeded");
}

/** An attestation token from the test issuer the server trusts (ES256 JWT). */
export function attestationToken(claims) {
  const key = createPrivateKey(readFileSync(must("ENCLAVA_ATTESTATION_KEY")));
  const now = Math.floor(Date.now() / 1000);
  const body = {
    iss: must("ENCLAVA_ATTESTATION_ISSUER"),
    iat: now,
    nbf: now,
    exp: now + 300,
    jti: randomUUID(),
    ...claims,
  };
  const header = { alg: "ES256", kid: "nodetest-att-1", typ: "JWT" };
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(body))}`;
  const sig = nodeSign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  return `${input}.${b64u(sig)}`;
}

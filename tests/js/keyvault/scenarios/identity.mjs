// @azure/identity's ClientSecretCredential against Enclava's token endpoint
// (/{tenant}/oauth2/v2.0/token), with the Key Vault SDKs using the tokens it obtains: roles decide
// what each principal may do.

import assert from "node:assert/strict";
import { ClientSecretCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { SecretClient } from "@azure/keyvault-secrets";
import { adminToken, clientOptions, restError, secretClient, keyClient, unique, url } from "../lib/sdk.mjs";

async function admin(method, path, body) {
  const r = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${adminToken()}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert.ok([200, 201, 204].includes(r.status), `${method} ${path} -> ${r.status}: ${text}`);
  return text ? JSON.parse(text) : {};
}

async function principal(role) {
  const sp = await admin("POST", "/enclava/principals", { kind: "service_principal", display_name: unique("js-sp") });
  await admin("POST", "/enclava/role-assignments", { principal: sp.client_id, role });
  // The authority is the server itself; instance discovery (a call to login.microsoftonline.com)
  // does not apply to a private authority.
  return new ClientSecretCredential("enclava-test-tenant", sp.client_id, sp.client_secret, { authorityHost: url, disableInstanceDiscovery: true });
}

export async function clientSecretCredentialRoles() {
  const name = unique("js-id-secret");
  await secretClient().setSecret(name, "readable by the service principal");
  const reader = await principal("SecretsUser");
  const token = await reader.getToken("https://vault.azure.net/.default");
  assert.ok(token.token && token.expiresOnTimestamp > Date.now());
  const secrets = new SecretClient(url, reader, clientOptions);
  assert.equal((await secrets.getSecret(name)).value, "readable by the service principal");
  assert.equal((await restError(secrets.setSecret(name, "overwritten"))).statusCode, 403, "SecretsUser cannot write");
  assert.equal((await secretClient().getSecret(name)).value, "readable by the service principal");

  const keyName = unique("js-id-key");
  await keyClient().createEcKey(keyName, { curve: "P-256" });
  const user = await principal("CryptoUser");
  const keys = new KeyClient(url, user, clientOptions);
  const sig = await keys.getCryptographyClient(keyName).signData("ES256", Buffer.from("by a crypto user"));
  assert.equal(sig.result.length, 64);
  assert.equal((await restError(keys.createEcKey(unique("js-id-denied"), { curve: "P-256" }))).statusCode, 403, "CryptoUser cannot create keys");
}

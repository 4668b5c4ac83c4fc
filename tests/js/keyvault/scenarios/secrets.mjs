// SecretClient (@azure/keyvault-secrets 4.12.0, default options): set/get/list/versions/update/
// delete/recover/purge/backup/restore against the real server.

import assert from "node:assert/strict";
import { all, restError, secretClient, unique, url } from "../lib/sdk.mjs";

const POLL = { intervalInMs: 50 };

export async function setGetListVersionsUpdate() {
  const client = secretClient();
  const name = unique("js-secret");
  const versions = [];
  for (let i = 0; i < 4; i++) versions.push(await client.setSecret(name, `value-${i}`, { contentType: "text/plain", tags: { i: String(i) } }));
  assert.equal(new Set(versions.map((v) => v.properties.version)).size, 4);
  assert.ok(versions[0].properties.id.startsWith(`${url}/secrets/${name}/`));
  assert.equal((await client.getSecret(name)).value, "value-3");
  for (const [i, v] of versions.entries()) {
    const got = await client.getSecret(name, { version: v.properties.version });
    assert.equal(got.value, `value-${i}`);
    assert.equal(got.properties.contentType, "text/plain");
    assert.deepEqual(got.properties.tags, { i: String(i) });
  }
  // Versions, paged.
  const pages = [];
  for await (const page of client.listPropertiesOfSecretVersions(name).byPage({ maxPageSize: 3 })) pages.push(page);
  assert.ok(pages.length >= 2);
  assert.deepEqual(pages.flat().map((p) => p.version).sort(), versions.map((v) => v.properties.version).sort());
  assert.ok(pages.flat().every((p) => p.value === undefined), "listings carry no values");
  // Versions of a secret that does not exist: an empty list, as Key Vault answers (was 404).
  assert.deepEqual(await all(client.listPropertiesOfSecretVersions(unique("js-no-such-secret"))), []);
  assert.ok((await all(client.listPropertiesOfSecrets())).some((p) => p.name === name));
  // Update properties (latest version and an older one).
  const updated = await client.updateSecretProperties(name, versions[3].properties.version, { contentType: "application/json", tags: { updated: "yes" } });
  assert.equal(updated.contentType, "application/json");
  assert.deepEqual(updated.tags, { updated: "yes" });
  const disabled = await client.updateSecretProperties(name, versions[0].properties.version, { enabled: false });
  assert.equal(disabled.enabled, false);
  const e = await restError(client.getSecret(name, { version: versions[0].properties.version }));
  assert.equal(e.statusCode, 403, "a disabled version's value is not returned");
  const nf = await restError(client.getSecret(unique("js-missing")));
  assert.equal(nf.statusCode, 404);
  assert.equal(nf.code, "SecretNotFound");
  // Large and unicode values round-trip unchanged.
  const big = "é✓".repeat(4000);
  const set = await client.setSecret(unique("js-big"), big);
  assert.equal((await client.getSecret(set.name)).value, big);
}

export async function deleteRecoverPurgeBackupRestore() {
  const client = secretClient();
  const name = unique("js-secret-del");
  const secret = await client.setSecret(name, "keep me");
  const deleted = await (await client.beginDeleteSecret(name, POLL)).pollUntilDone();
  assert.equal(deleted.name, name);
  assert.ok(deleted.properties.recoveryId.includes(name));
  assert.ok(deleted.properties.scheduledPurgeDate > deleted.properties.deletedOn);
  assert.equal((await restError(client.getSecret(name))).statusCode, 404);
  assert.equal((await client.getDeletedSecret(name)).name, name);
  assert.ok((await all(client.listDeletedSecrets())).some((d) => d.name === name));
  const recovered = await (await client.beginRecoverDeletedSecret(name, POLL)).pollUntilDone();
  assert.equal(recovered.name, name);
  assert.equal(recovered.version, secret.properties.version);
  assert.equal((await client.getSecret(name)).value, "keep me");

  const backup = await client.backupSecret(name);
  assert.ok(backup instanceof Uint8Array && backup.length > 0);
  assert.equal(Buffer.from(backup).indexOf(Buffer.from("keep me")), -1, "the backup does not carry the value in the clear");
  await (await client.beginDeleteSecret(name, POLL)).pollUntilDone();
  await client.purgeDeletedSecret(name);
  assert.equal((await restError(client.getDeletedSecret(name))).statusCode, 404);
  const restored = await client.restoreSecretBackup(backup);
  assert.equal(restored.name, name);
  assert.equal((await client.getSecret(name)).value, "keep me");
  assert.equal((await restError(client.restoreSecretBackup(backup))).statusCode, 409);
}

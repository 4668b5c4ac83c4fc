// CertificateClient: the Key Vault certificates data plane through Microsoft's unmodified JavaScript
// SDK against a real `enclava server --dev` (scenarios/certificates.mjs runs in a child process
// trusting the server's CA; @azure/keyvault-secrets downloads the certificates' secrets).
import { after, before, test } from "node:test";
import { runScenario, startServer } from "./lib/server.mjs";

let server;
before(async () => {
  // Certificate lifetime actions run on the server's maintenance tick (default 60 s): the autoRenew
  // scenario waits for it, so this server ticks every 2 s (lib/server.mjs passes process.env on).
  process.env.ENCLAVA_MAINTENANCE_INTERVAL_SECS ??= "2";
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

for (const name of [
  "createSelfSignedAndDownloadPfx",
  "createEnclavaIssuedPfxAndPem",
  "importPfxAndPem",
  "csrMerge",
  "versionsAndPolicyUpdate",
  "autoRenew",
  "deleteRecoverPurgeBackupRestore",
  "issuersAndContacts",
]) {
  test(name, () => runScenario(server, "certificates", name));
}

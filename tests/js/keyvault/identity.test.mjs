// @azure/identity (ClientSecretCredential) with the Key Vault SDKs against a real
// `enclava server --dev` (scenarios/identity.mjs runs in a child process trusting the server's CA).
import { after, before, test } from "node:test";
import { runScenario, startServer } from "./lib/server.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("clientSecretCredentialRoles", () => runScenario(server, "identity", "clientSecretCredentialRoles"));

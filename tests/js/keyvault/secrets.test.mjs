// SecretClient: every secret operation, through Microsoft's unmodified JavaScript SDK against a real
// `enclava server --dev` (scenarios/secrets.mjs runs in a child process trusting the server's CA).
import { after, before, test } from "node:test";
import { runScenario, startServer } from "./lib/server.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("setGetListVersionsUpdate", () => runScenario(server, "secrets", "setGetListVersionsUpdate"));
test("deleteRecoverPurgeBackupRestore", () => runScenario(server, "secrets", "deleteRecoverPurgeBackupRestore"));

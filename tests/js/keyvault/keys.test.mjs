// KeyClient: every key operation, through Microsoft's unmodified JavaScript SDK against a real
// `enclava server --dev` (scenarios/keys.mjs runs in a child process trusting the server's CA).
import { after, before, test } from "node:test";
import { runScenario, startServer } from "./lib/server.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("createEveryTypeAndCurve", () => runScenario(server, "keys", "createEveryTypeAndCurve"));
test("importKeys", () => runScenario(server, "keys", "importKeys"));
test("getListVersionsUpdate", () => runScenario(server, "keys", "getListVersionsUpdate"));
test("rotateAndRotationPolicy", () => runScenario(server, "keys", "rotateAndRotationPolicy"));
test("backupRestoreDeleteRecoverPurge", () => runScenario(server, "keys", "backupRestoreDeleteRecoverPurge"));
test("randomBytes", () => runScenario(server, "keys", "randomBytes"));
test("keyAttestation", () => runScenario(server, "keys", "keyAttestation"));

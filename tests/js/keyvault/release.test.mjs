// KeyClient.releaseKey: secure key release, through Microsoft's unmodified JavaScript SDK against a real
// `enclava server --dev` (scenarios/release.mjs runs in a child process trusting the server's CA).
import { after, before, test } from "node:test";
import { runScenario, startServer } from "./lib/server.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("releaseOctKeyEveryAlgorithm", () => runScenario(server, "release", "releaseOctKeyEveryAlgorithm"));
test("releaseRsaAndEcKeys", () => runScenario(server, "release", "releaseRsaAndEcKeys"));
test("releaseRefusals", () => runScenario(server, "release", "releaseRefusals"));

// CryptographyClient: every cryptographic operation, remote and local, through Microsoft's unmodified JavaScript SDK against a real
// `enclava server --dev` (scenarios/crypto.mjs runs in a child process trusting the server's CA).
import { after, before, test } from "node:test";
import { runScenario, startServer } from "./lib/server.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("rsaEncryptWrapSignVerify", () => runScenario(server, "crypto", "rsaEncryptWrapSignVerify"));
test("ecSignVerifyEveryCurve", () => runScenario(server, "crypto", "ecSignVerifyEveryCurve"));
test("aesEncryptWrap", () => runScenario(server, "crypto", "aesEncryptWrap"));
test("keyOpsAreEnforced", () => runScenario(server, "crypto", "keyOpsAreEnforced"));

// Test side of the JavaScript Key Vault SDK suite: start a real `enclava server --dev` (the binary
// named by ENCLAVA_BIN, as tests/python/conftest.py does), and run SDK scenarios against it in child
// Node processes that trust the server's CA through NODE_EXTRA_CA_CERTS (Node reads it only at
// start-up, and the SDK's HTTP client offers no CA option; the SDK code itself runs unmodified).
//
// The server trusts a test attestation issuer (ENCLAVA_TRUSTED_ISSUERS) whose P-256 key this module
// generates; scenarios sign attestation tokens with it for secure key release.

import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, "../../../..");
const READY_TIMEOUT_MS = Number(process.env.ENCLAVA_READY_TIMEOUT ?? "60") * 1000;
const SCENARIO_TIMEOUT_MS = Number(process.env.ENCLAVA_SCENARIO_TIMEOUT ?? "300") * 1000;
export const TEST_ATTESTATION_ISSUER = "https://attest.nodetest.enclava.invalid";

function binary() {
  const raw = process.env.ENCLAVA_BIN ?? "target/debug/enclava";
  const path = resolve(REPO, raw);
  if (!existsSync(path)) {
    throw new Error(`enclava binary not found at ${path} (set ENCLAVA_BIN or run \`cargo build -p enclava\`)`);
  }
  return path;
}

/** Start `enclava server --dev` on 127.0.0.1:0; resolves once it printed `ready https://...`. */
export async function startServer() {
  const tmp = mkdtempSync(join(tmpdir(), "enclava-jstest-"));
  const dataDir = join(tmp, "data");
  // The test attestation issuer (ES256): the server trusts its JWKS.
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = { ...publicKey.export({ format: "jwk" }), kid: "nodetest-att-1", use: "sig", alg: "ES256" };
  const jwksPath = join(tmp, "attestation-jwks.json");
  writeFileSync(jwksPath, JSON.stringify({ keys: [jwk] }));
  const attestationKeyPath = join(tmp, "attestation-key.pem");
  writeFileSync(attestationKeyPath, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });

  const bin = binary();
  const args = ["server", "--dev", "--data-dir", dataDir, "--addr", "127.0.0.1:0"];
  const proc = spawn(bin, args, {
    env: { ...process.env, ENCLAVA_TRUSTED_ISSUERS: `${TEST_ATTESTATION_ISSUER}=${jwksPath}` },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  proc.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-8000);
  });
  const seen = [];
  const url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`no \`ready https://...\` line within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    let buf = "";
    proc.stdout.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        seen.push(line);
        const parts = line.split(/\s+/);
        if (parts.length === 2 && parts[0] === "ready" && parts[1].startsWith("https://")) {
          clearTimeout(timer);
          ok(parts[1].replace(/\/$/, ""));
        }
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`server exited (code ${code}) before printing \`ready https://...\``));
    });
  }).catch((e) => {
    proc.kill("SIGKILL");
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`enclava server failed to start: ${e.message}\ncommand: ${bin} ${args.join(" ")}\nstdout: ${JSON.stringify(seen)}\nstderr:\n${stderr}`);
  });
  // Keep draining stdout so the server never blocks on a full pipe.
  proc.stdout.resume();
  const ca = join(dataDir, "ca.pem");
  const tokenFile = join(dataDir, "admin.token");
  for (const f of [ca, tokenFile]) {
    if (!existsSync(f)) throw new Error(`server printed ready but did not write ${f}`);
  }
  if (!readFileSync(tokenFile, "utf8").trim()) throw new Error(`${tokenFile} is empty`);

  return {
    url,
    ca,
    tokenFile,
    dataDir,
    attestationKeyPath,
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((ok) => {
          const t = setTimeout(() => {
            proc.kill("SIGKILL");
            ok();
          }, 10000);
          proc.on("exit", () => {
            clearTimeout(t);
            ok();
          });
        });
      }
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * Run one scenario of scenarios/<file>.mjs in a child Node process that trusts the server's CA.
 * The scenario throws (node:assert) on any mismatch; the child's output becomes the failure.
 */
export function runScenario(server, file, name) {
  const script = join(HERE, "..", "scenarios", `${file}.mjs`);
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [join(HERE, "child.mjs"), script, name], {
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: server.ca,
        ENCLAVA_URL: server.url,
        ENCLAVA_TOKEN_FILE: server.tokenFile,
        ENCLAVA_ATTESTATION_KEY: server.attestationKeyPath,
        ENCLAVA_ATTESTATION_ISSUER: TEST_ATTESTATION_ISSUER,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), SCENARIO_TIMEOUT_MS);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) ok(out);
      else fail(new Error(`scenario ${file}:${name} failed (exit ${code ?? signal}):\n${out}\n--- server stderr (tail) ---\n${server.stderr().slice(-3000)}`));
    });
  });
}

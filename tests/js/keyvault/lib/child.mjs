// Child process entry: run one exported scenario function of a scenario module. Started by
// lib/server.mjs with NODE_EXTRA_CA_CERTS naming the test server's CA.
import { pathToFileURL } from "node:url";

const [script, name] = process.argv.slice(2);
try {
  const mod = await import(pathToFileURL(script).href);
  const fn = mod[name];
  if (typeof fn !== "function") throw new Error(`${script} exports no scenario ${name}`);
  await fn();
  process.exit(0);
} catch (e) {
  console.error(e?.stack ?? String(e));
  if (e?.details !== undefined) console.error("details:", JSON.stringify(e.details));
  process.exit(1);
}

// Start a real `enclava server --dev` (process.env.ENCLAVA_BIN) on 127.0.0.1:0 for a test suite,
// the way tests/python/conftest.py does: wait for its one stdout line `ready https://...`, then
// hand back the URL, the CA file it wrote and its bootstrap administrator token.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const READY_TIMEOUT_MS = Number(process.env.ENCLAVA_READY_TIMEOUT ?? 60) * 1000;

export async function startServer({ env = {}, prepare } = {}) {
  const bin = process.env.ENCLAVA_BIN;
  if (!bin || !existsSync(bin)) {
    throw new Error(`ENCLAVA_BIN must name the enclava binary (found ${JSON.stringify(bin)})`);
  }
  const root = mkdtempSync(join(tmpdir(), 'enclava-js-'));
  const dataDir = join(root, 'data');
  mkdirSync(dataDir);
  const extraEnv = prepare ? prepare(root) : {};
  const child = spawn(bin, ['server', '--dev', '--data-dir', dataDir, '--addr', '127.0.0.1:0'], {
    env: { ...process.env, ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within ${READY_TIMEOUT_MS} ms; stderr:\n${stderr}`)), READY_TIMEOUT_MS);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const parts = line.trim().split(/\s+/);
      if (parts.length === 2 && parts[0] === 'ready' && parts[1].startsWith('https://')) {
        clearTimeout(timer);
        resolve(parts[1].replace(/\/$/, ''));
      }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}) before it was ready; stderr:\n${stderr}`)); });
  });
  const ca = join(dataDir, 'ca.pem');
  const adminToken = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  return {
    url,
    ca,
    adminToken,
    root,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}

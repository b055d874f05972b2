// The spreadguard binary as the tests run it: `audit -o html` into a file, `serve --ui` as a
// process whose admin address is read from its JSON log.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT } from './browser.js';

export const BIN = process.env.SPREADGUARD_BIN || path.join(ROOT, 'target/debug/spreadguard');

export function tempDir(prefix = 'spreadguard-browser-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/// `spreadguard audit ARGS -o html`, written to `file`; returns the file's path.
export function auditHtml(args, file) {
  const out = spawnSync(BIN, ['audit', ...args, '-o', 'html'], { cwd: ROOT, maxBuffer: 1 << 30 });
  if (out.status !== 0 && out.status !== 1) {
    throw new Error(`audit exited ${out.status}: ${out.stderr}`);
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, out.stdout);
  return file;
}

/// Runs a process without blocking the event loop (the fake API server lives in it); resolves
/// to {status, stdout, stderr}.
export function run(bin, args) {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { cwd: ROOT });
    const out = [], err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

/// Certificates for a server on localhost.
export function certificates(dir) {
  const out = spawnSync(BIN, ['certs', 'generate', '--service', 'localhost', '--namespace', 'test', '--out', dir]);
  if (out.status !== 0) throw new Error(`certs generate: ${out.stderr}`);
  return { cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key') };
}

/// Starts `spreadguard serve ARGS --ui` on ephemeral loopback ports; resolves once the admin
/// port is logged, to {admin: 'http://127.0.0.1:PORT', stop()}.
export async function startServe(args) {
  const child = spawn(BIN, ['serve', '--ui', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--log-format', 'json', ...args], {
    cwd: ROOT,
    env: { ...process.env, RUST_LOG: 'info', SPREADGUARD_SHUTDOWN_GRACE: '0s', SPREADGUARD_DRAIN_TIMEOUT: '1s' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  const admin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('serve did not log its admin port:\n' + log.join('\n'))), 30000);
    child.on('exit', (code) => reject(new Error(`serve exited ${code}:\n${log.join('\n')}`)));
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      log.push(line);
      try {
        const event = JSON.parse(line);
        const message = (event.fields && event.fields.message) || event.message || '';
        const addr = (event.fields && event.fields.addr) || event.addr;
        if (message.startsWith('admin port') && addr) {
          clearTimeout(timer);
          resolve(`http://${addr}`);
        }
      } catch { /* not JSON */ }
    });
  });
  return {
    admin,
    log,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/// Waits until `GET url` answers 200; returns the body.
export async function waitFor(url, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      if (r.status === 200) return await r.text();
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url}: ${last}`);
}

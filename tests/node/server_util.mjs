// Starts `swiftllm serve` on a free loopback port for the Node tests and the load script.
import { spawn, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const swiftllm = process.env.SWIFTLLM ?? path.join(root, "build/release/swiftllm");
export const demoModel = path.join(root, "models/swift-mini-24L");

export function startServer(args = []) {
  return new Promise((resolve, reject) => {
    const proc = spawn(swiftllm, ["serve", "-m", demoModel, "--port", "0", "-t", "2", "-q", ...args],
                       { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    const timer = setTimeout(() => reject(new Error("server did not start in 60 s:\n" + log)), 60000);
    proc.stderr.on("data", (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m && !proc.port) {
        proc.port = Number(m[1]);
        clearTimeout(timer);
        resolve({ proc, port: proc.port, url: `http://127.0.0.1:${proc.port}`, log: () => log });
      }
    });
    proc.on("exit", (code) => { clearTimeout(timer); if (!proc.port) reject(new Error(`server exited ${code}:\n${log}`)); });
  });
}

export function stopServer(s) {
  return new Promise((resolve) => {
    if (s.proc.exitCode !== null) return resolve(s.proc.exitCode);
    s.proc.on("exit", (code) => resolve(code));
    s.proc.kill("SIGTERM");
  });
}

export function generateCli(prompt, n, mode = "ar") {
  const out = execFileSync(swiftllm, ["generate", "-m", demoModel, "-p", prompt, "-n", String(n), "--temp", "0",
                                      "-t", "2", "--json", "--decode", mode], { encoding: "utf8" });
  return JSON.parse(out);
}

export function rssBytes(pid) {
  try {
    const s = execFileSync("cat", [`/proc/${pid}/status`], { encoding: "utf8" });
    const m = s.match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : 0;
  } catch { return 0; }
}

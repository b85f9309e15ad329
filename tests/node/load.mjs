// Load test of `swiftllm serve` with the official OpenAI client: N concurrent streaming clients
// for S seconds, a fraction of them hanging up at random moments. Reports throughput, latency
// percentiles, errors, incomplete streams, slots freed after disconnects, and resident memory
// over time. Exit status 1 when any request failed, any stream ended incomplete, slots stayed
// busy, or memory kept growing.
//
//   node tests/node/load.mjs [--clients 16] [--seconds 60] [--parallel 4] [--disconnect 0.1]
//                            [--max-tokens 128] [--decode hybrid] [--json OUT]
// Traffic goes to 127.0.0.1 only (the server is started here on a free port).
import OpenAI from "openai";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startServer, stopServer, rssBytes, root } from "./server_util.mjs";

export async function runLoad(o) {
  const server = await startServer(["--parallel", String(o.parallel), "--decode", o.decode]);
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0, timeout: 120000 });
  const prompts = ["code.jsonl", "docs.jsonl"].flatMap((f) =>
    readFileSync(path.join(root, "tests/data", f), "utf8").trim().split("\n").map((l) => JSON.parse(l).text.slice(-800)));
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const stats = { requests: 0, completed: 0, aborted_by_client: 0, errors: [], incomplete: 0, tokens: 0, ttft: [], latency: [] };
  const rss = [];
  const t0 = Date.now(), deadline = t0 + o.seconds * 1000;
  const sampler = setInterval(() => rss.push({ t: (Date.now() - t0) / 1000, rss: rssBytes(server.proc.pid) }), 1000);

  async function oneClient(id) {
    while (Date.now() < deadline) {
      const prompt = prompts[Math.floor(rand() * prompts.length)];
      const hangUp = rand() < o.disconnect;
      const controller = new AbortController();
      const start = Date.now();
      let first = 0, finish = null, usage = null;
      stats.requests++;
      try {
        const stream = await client.completions.create({
          model: "m", prompt, max_tokens: 16 + Math.floor(rand() * o.maxTokens), stream: true,
          temperature: id % 2 ? 0 : 0.8, seed: id, stream_options: { include_usage: true },
        }, { signal: controller.signal });
        let timer = null;
        for await (const chunk of stream) {
          if (!first) {
            first = Date.now();
            if (hangUp) timer = setTimeout(() => controller.abort(), Math.floor(rand() * 500));
          }
          if (chunk.choices?.[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
          if (chunk.usage) usage = chunk.usage;
        }
        clearTimeout(timer);
        if (controller.signal.aborted) { stats.aborted_by_client++; continue; }  // we hung up: expected
        if (!finish) { stats.incomplete++; continue; }
        stats.completed++;
        stats.tokens += usage?.completion_tokens ?? 0;
        stats.ttft.push(first - start);
        stats.latency.push(Date.now() - start);
      } catch (e) {
        if (hangUp && (e.name === "APIUserAbortError" || controller.signal.aborted)) stats.aborted_by_client++;
        else stats.errors.push(String(e.message ?? e));
      }
    }
  }
  await Promise.all(Array.from({ length: o.clients }, (_, i) => oneClient(i)));
  const elapsed = (Date.now() - t0) / 1000;
  clearInterval(sampler);
  // Every slot is free again once the clients are gone.
  let health = null;
  for (let i = 0; i < 50; i++) {
    health = await (await fetch(`${server.url}/health`)).json();
    if (health.slots_processing === 0 && health.requests_queued === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const metric = (k) => Number((metrics.match(new RegExp(`^swiftllm_${k} (\\S+)`, "m")) ?? [])[1] ?? NaN);
  const exitCode = await stopServer(server);
  const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))] : NaN; };
  const half = rss.filter((r) => r.t > o.seconds / 2).map((r) => r.rss);
  const report = {
    clients: o.clients, seconds: elapsed, parallel: o.parallel, decode: o.decode,
    requests: stats.requests, completed: stats.completed, client_disconnects: stats.aborted_by_client,
    errors: stats.errors.length, error_examples: stats.errors.slice(0, 5), incomplete_streams: stats.incomplete,
    tokens: stats.tokens, tokens_per_s: stats.tokens / elapsed,
    ttft_ms: { p50: pct(stats.ttft, 50), p90: pct(stats.ttft, 90), p99: pct(stats.ttft, 99) },
    latency_ms: { p50: pct(stats.latency, 50), p90: pct(stats.latency, 90), p99: pct(stats.latency, 99) },
    server_aborted: metric("requests_aborted_total"), server_acceptance_rate: metric("acceptance_rate"),
    pool_contended_rounds: metric("pool_contended_rounds_total"),
    pool_serial_fraction: metric("pool_serial_rounds_total") / Math.max(1, metric("pool_rounds_total")),
    slots_after: health, rss_mb: { first: rss[0]?.rss / 2 ** 20, max: Math.max(...rss.map((r) => r.rss)) / 2 ** 20,
                                    second_half_min: Math.min(...half) / 2 ** 20, second_half_max: Math.max(...half) / 2 ** 20 },
    server_exit: exitCode,
  };
  report.ok = report.errors === 0 && report.incomplete_streams === 0 && health.slots_processing === 0 &&
              health.requests_queued === 0 && exitCode === 0 &&
              report.rss_mb.second_half_max <= report.rss_mb.second_half_min * 1.25 + 16;
  return report;
}

if (process.argv[1]?.endsWith("load.mjs")) {
  const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : d; };
  const o = { clients: Number(arg("--clients", 16)), seconds: Number(arg("--seconds", 60)), parallel: Number(arg("--parallel", 4)),
              disconnect: Number(arg("--disconnect", 0.1)), maxTokens: Number(arg("--max-tokens", 128)), decode: arg("--decode", "hybrid") };
  const r = await runLoad(o);
  console.log(JSON.stringify(r, null, 2));
  if (arg("--json")) writeFileSync(arg("--json"), JSON.stringify(r, null, 2) + "\n");
  process.exit(r.ok ? 0 : 1);
}

// swiftllm serve driven by the official OpenAI client for Node (npm `openai`), as editors,
// agents and chat front ends use it: completions and chat, streaming and not, stop strings,
// usage, greedy output equal to `swiftllm generate`, SWIFT / hybrid / AR identical, errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer, stopServer, generateCli } from "./server_util.mjs";

const KEY = "node-test-key";
let server, client;

before(async () => {
  server = await startServer(["--api-key", KEY, "--chat-template", "llama2", "--parallel", "2"]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
after(async () => {
  assert.equal(await stopServer(server), 0, "clean exit on SIGTERM");
});

const prompt = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n";

test("models.list names the model", async () => {
  const page = await client.models.list();
  assert.equal(page.data[0].id, "swift-mini-24L");
});

test("greedy completion equals swiftllm generate, in every decoding mode", async () => {
  const cli = generateCli(prompt, 48);
  for (const decode of ["hybrid", "swift", "ar", "lookup"]) {
    const r = await client.completions.create({ model: "swift-mini-24L", prompt, max_tokens: 48, temperature: 0, decode });
    assert.equal(r.choices[0].text, cli.text, decode);
    assert.equal(r.usage.completion_tokens, cli.tokens.length);
    assert.equal(r.usage.prompt_tokens, cli.stats.prompt_tokens);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    assert.equal(r.swift.decode, decode);
    assert.equal(typeof r.swift.acceptance_rate, "number");
  }
});

test("streamed completion equals the non-streamed one", async () => {
  const full = await client.completions.create({ model: "m", prompt, max_tokens: 40, temperature: 0 });
  const stream = await client.completions.create({ model: "m", prompt, max_tokens: 40, temperature: 0, stream: true });
  let text = "", finish = null, chunks = 0;
  for await (const chunk of stream) {
    text += chunk.choices[0].text;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    chunks++;
  }
  assert.ok(chunks > 3);
  assert.equal(text, full.choices[0].text);
  assert.equal(finish, "length");
});

test("stop strings cut the text and finish with 'stop'", async () => {
  const full = await client.completions.create({ model: "m", prompt, max_tokens: 40, temperature: 0 });
  const text = full.choices[0].text;
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 3);
  for (const stream of [false, true]) {
    const r = await client.completions.create({ model: "m", prompt, max_tokens: 40, temperature: 0, stop: [stop], stream });
    let got = "", finish = null;
    if (stream) {
      for await (const c of r) { got += c.choices[0].text; finish = c.choices[0].finish_reason ?? finish; }
    } else {
      got = r.choices[0].text;
      finish = r.choices[0].finish_reason;
    }
    assert.equal(got, text.slice(0, text.indexOf(stop)));
    assert.equal(finish, "stop");
  }
});

test("chat completions, streaming and not, with usage", async () => {
  const messages = [{ role: "system", content: "You write Python." }, { role: "user", content: "def add(a, b):" }];
  const r = await client.chat.completions.create({ model: "m", messages, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0].message.role, "assistant");
  assert.ok(r.usage.prompt_tokens > 10);
  const s = await client.chat.completions.create({ model: "m", messages, max_tokens: 24, temperature: 0, stream: true,
                                                   stream_options: { include_usage: true } });
  let text = "", role = null, usage = null;
  for await (const c of s) {
    if (c.choices[0]?.delta?.role) role = c.choices[0].delta.role;
    text += c.choices[0]?.delta?.content ?? "";
    if (c.usage) usage = c.usage;
  }
  assert.equal(role, "assistant");
  assert.equal(text, r.choices[0].message.content);
  assert.deepEqual(usage, r.usage);
});

test("sampling with a seed is reproducible in plain decoding", async () => {
  // Speculative modes sample exactly from the same distribution, but which random draws they
  // use depends on the draft tree, which depends on state shared across requests (n-gram cache,
  // acceptance statistics): the same seed need not give the same text there (README).
  const req = { model: "m", prompt, max_tokens: 24, temperature: 0.9, top_p: 0.95, seed: 7, decode: "ar" };
  const a = await client.completions.create(req);
  const b = await client.completions.create(req);
  assert.equal(a.choices[0].text, b.choices[0].text);
  const c = await client.completions.create({ ...req, seed: 8 });
  assert.notEqual(a.choices[0].text, c.choices[0].text);
});

test("errors arrive as the client's typed errors", async () => {
  const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(bad.completions.create({ model: "m", prompt: "x" }), (e) => e instanceof OpenAI.AuthenticationError);
  await assert.rejects(client.completions.create({ model: "m", prompt: [-1] }),
                       (e) => e instanceof OpenAI.BadRequestError && /vocabulary/.test(e.message));
  await assert.rejects(client.completions.create({ model: "m", prompt, max_tokens: 100000 }),
                       (e) => e instanceof OpenAI.BadRequestError);
  await assert.rejects(client.chat.completions.create({ model: "m", messages: [{ role: "assistant", content: "x" }] }),
                       (e) => e instanceof OpenAI.BadRequestError && /alternate/.test(e.message));
});

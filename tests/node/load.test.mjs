// A short version of load.mjs for the test suite: 8 streaming clients for 12 s on 2 slots,
// 20% hanging up mid-stream. The full run (16 clients, 60 s, --parallel 4) is a command:
// `node tests/node/load.mjs` (README).
import { test } from "node:test";
import assert from "node:assert/strict";
import { runLoad } from "./load.mjs";

test("concurrent streaming clients: no errors, complete streams, slots freed, memory stable", async () => {
  const r = await runLoad({ clients: 8, seconds: 12, parallel: 2, disconnect: 0.2, maxTokens: 64, decode: "hybrid" });
  assert.equal(r.errors, 0, JSON.stringify(r.error_examples));
  assert.equal(r.incomplete_streams, 0);
  assert.ok(r.completed > 10, `only ${r.completed} completed`);
  assert.ok(r.client_disconnects > 0, "no client hung up: raise the disconnect rate");
  assert.ok(r.server_aborted >= 1, "the server saw no aborted generation");
  assert.equal(r.slots_after.slots_processing, 0);
  assert.equal(r.server_exit, 0);
  assert.ok(r.ok, JSON.stringify(r));
});

// Live check of our chat-template rendering (`swiftllm template --batch`) against the official
// Hugging Face Jinja implementation (@huggingface/jinja), on every built-in template and the
// feature templates, over many message lists (chat_cases.mjs). Where JS and Python Jinja
// disagree we follow Python (transformers) and the case records why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { builtinTemplates, featureTemplates, cases, hfRender, pythonDivergence } from "./chat_cases.mjs";
import { swiftllm } from "./server_util.mjs";

test("our renders equal @huggingface/jinja's", () => {
  const all = cases({ ...builtinTemplates(swiftllm), ...featureTemplates });
  const file = path.join(mkdtempSync(path.join(tmpdir(), "swiftllm-")), "cases.json");
  writeFileSync(file, JSON.stringify(all));
  const ours = JSON.parse(execFileSync(swiftllm, ["template", "--batch", file], { encoding: "utf8" }));
  assert.equal(ours.length, all.length);
  let compared = 0, errors = 0, python = 0;
  all.forEach((c, i) => {
    const where = `${c.name} ${JSON.stringify(c.messages)} gen=${c.add_generation_prompt}`;
    const div = pythonDivergence(c);
    const want = div.python ?? hfRender(c);
    python += div.python ? 1 : 0;
    if (want.error !== undefined) {
      assert.ok(ours[i].error !== undefined, `${where}: expected an error (${want.error}), got ${JSON.stringify(ours[i])}`);
      assert.ok(ours[i].error.includes(want.error), `${where}: ${ours[i].error} vs ${want.error}`);
      errors++;
    } else {
      assert.equal(ours[i].text, want.text, where);
      compared++;
    }
  });
  assert.ok(compared > 200 && errors > 10, `${compared} compared, ${errors} errors`);
  assert.equal(python, 4);
});

// Greedy continuation of token ids by llama.cpp (the prebuilt ggml of node-llama-cpp), for the
// GGUF compatibility check in scripts/llamacpp_check/run.
import {getLlama} from "node-llama-cpp";

const [modelPath, idsCsv, nStr] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: 1024, threads: 2});
const seq = context.getSequence();
const out = [];
for await (const t of seq.evaluate(idsCsv.split(",").map(Number), {temperature: 0})) {
  out.push(t);
  if (out.length >= Number(nStr)) break;
}
console.log(JSON.stringify(out));

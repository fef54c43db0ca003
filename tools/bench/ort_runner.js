// One ONNX Runtime process of the comparison: loads MODEL.onnx with every graph optimisation and
// INTRA intra-op threads, runs WARMUP + RUNS forward passes on the raw float32 input, and prints
// one JSON line: {"runtime", "version", "threads", "times_ms": [...]}. With OUTPUT.bin it also writes
// the first output of the last run there, raw float32 (tools/bench/ort_quantize.py --check reads it).
//   node ort_runner.js ORT_MODULE_DIR MODEL.onnx INPUT.bin INTRA WARMUP RUNS [OUTPUT.bin]
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [modDir, model, input, intra, warmup, runs, output] = process.argv.slice(2);
  const ort = require(path.resolve(modDir));
  const version = require(path.join(path.resolve(modDir), 'package.json')).version;
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(intra),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const name = session.inputNames[0];
  const buf = fs.readFileSync(input);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  // The fixtures hold one image of the model's input shape (meta.json beside input.bin: a rewritten
  // model, such as ort_quantize.py's int8 one, lives elsewhere); ONNX files with a dynamic batch take 1.
  const meta = JSON.parse(fs.readFileSync(path.join(path.dirname(input), 'meta.json'), 'utf8'));
  const shape = meta.input_shape.slice();
  shape[0] = 1;
  const per = shape.reduce((a, b) => a * b, 1);
  const feeds = { [name]: new ort.Tensor('float32', data.subarray(0, per), shape) };
  for (let i = 0; i < Number(warmup); ++i) await session.run(feeds);
  const times = [];
  let result = null;
  for (let i = 0; i < Number(runs); ++i) {
    const t0 = process.hrtime.bigint();
    result = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  if (output && result) {
    const y = result[session.outputNames[0]].data;
    fs.writeFileSync(output, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  }
  console.log(JSON.stringify({ runtime: 'onnxruntime', version, threads: Number(intra), times_ms: times }));
}

main().catch((e) => {
  console.error(String(e && e.stack || e));
  process.exit(1);
});

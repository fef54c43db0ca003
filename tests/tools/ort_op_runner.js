// ONNX Runtime's side of test_onnx_ops_vs_ort: runs every case of make_ort_op_cases.py that ORT is
// given (ort: true) on its raw inputs, graph optimisations off (the op's own kernel, nothing folded),
// and writes each output raw (little endian) as CASE/ort_<k>.bin, plus CASES_DIR/ort_results.json:
//   {"version": "...", "results": {"<case>": {"ok": true, "outputs": [{"dtype", "dims", "file"}]}
//                                  or {"ok": false, "error": "..."}}}
//   node ort_op_runner.js ORT_MODULE_DIR CASES_DIR
'use strict';
const fs = require('fs');
const path = require('path');

const arrays = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, int64: BigInt64Array, int32: Int32Array,
  int16: Int16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
};

function readInput(file, dtype) {
  const buf = fs.readFileSync(file);
  const Ctor = arrays[dtype];
  const copy = new ArrayBuffer(buf.byteLength);  // typed arrays need their element alignment
  new Uint8Array(copy).set(buf);
  return new Ctor(copy, 0, buf.byteLength / Ctor.BYTES_PER_ELEMENT);
}

async function main() {
  const [modDir, casesDir] = process.argv.slice(2);
  const ort = require(path.resolve(modDir));
  const version = require(path.join(path.resolve(modDir), 'package.json')).version;
  const cases = JSON.parse(fs.readFileSync(path.join(casesDir, 'cases.json'), 'utf8')).cases;
  const results = {};
  for (const c of cases) {
    if (!c.ort) continue;
    const dir = path.join(casesDir, c.name);
    try {
      const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), {
        graphOptimizationLevel: 'disabled', intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 4,
      });
      const feeds = {};
      c.inputs.forEach((inp, k) => {
        if (!inp) return;
        feeds[inp.name] = new ort.Tensor(inp.dtype, readInput(path.join(dir, `in_${k}.bin`), inp.dtype), inp.shape);
      });
      const out = await session.run(feeds);
      const outputs = c.outputs.map((name, k) => {
        const t = out[name];
        const d = t.data;
        const file = `ort_${k}.bin`;
        fs.writeFileSync(path.join(dir, file), Buffer.from(d.buffer, d.byteOffset, d.byteLength));
        return { dtype: t.type, dims: t.dims.map(Number), file };
      });
      results[c.name] = { ok: true, outputs };
      await session.release();
    } catch (e) {
      results[c.name] = { ok: false, error: String((e && e.message) || e).split('\n')[0] };
    }
  }
  fs.writeFileSync(path.join(casesDir, 'ort_results.json'), JSON.stringify({ version, results }, null, 1));
  const failed = Object.values(results).filter((r) => !r.ok).length;
  console.log(`ort_op_runner: onnxruntime-node ${version}, ${Object.keys(results).length} cases run, ${failed} refused by ORT`);
}

main().catch((e) => {
  console.error(String((e && e.stack) || e));
  process.exit(1);
});

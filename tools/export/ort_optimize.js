// Saves the graph ONNX Runtime optimises, as a user does with the session option
// optimizedModelFilePath: node ort_optimize.js ONNXRUNTIME_NODE_DIR LEVEL IN.onnx OUT.onnx
// LEVEL: basic, extended or all (graphOptimizationLevel). Used by the end-to-end tests on optimised
// graphs (issue 17); ONNX Runtime's Python tools are not reachable here, its npm package is.
const [, , moduleDir, level, input, output] = process.argv;
if (!output || !['basic', 'extended', 'all'].includes(level)) {
  console.error('usage: node ort_optimize.js ONNXRUNTIME_NODE_DIR basic|extended|all IN.onnx OUT.onnx');
  process.exit(2);
}
const ort = require(moduleDir);
ort.InferenceSession.create(input, {
  graphOptimizationLevel: level,
  optimizedModelFilePath: output,
  executionProviders: ['cpu'],
  logSeverityLevel: 3,
}).catch((e) => {
  console.error(`ort_optimize: ${input}: ${e.message || e}`);
  process.exit(1);
});

// ort_bench.js MODEL BATCH THREADS SECONDS — the same measurement with onnxruntime-node (CPU).
// Prints: onnxruntime <images/s> img/s peak_rss <MB> MB
const ort = require('onnxruntime-node');

async function main() {
  const [model, batchS, threadsS, secondsS] = process.argv.slice(2);
  const batch = +batchS, seconds = +secondsS;
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: +threadsS, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const name = session.inputNames[0];
  const meta = session.inputMetadata ? session.inputMetadata.find?.(m => m.name === name) : null;
  let dims = meta && meta.shape ? meta.shape.map(d => (typeof d === 'number' && d > 0 ? d : 224)) : [batch, 3, 224, 224];
  dims[0] = batch;
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random() - 0.5;
  const feeds = { [name]: new ort.Tensor('float32', data, dims) };
  await session.run(feeds);  // warm-up
  let runs = 0;
  const t0 = process.hrtime.bigint();
  let t = 0;
  do {
    await session.run(feeds);
    runs++;
    t = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (t < seconds || runs < 3);
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(`onnxruntime ${(runs * batch / t).toFixed(2)} img/s peak_rss ${rss.toFixed(0)} MB`);
}
main().catch(e => { console.error('ort_bench: ' + e.message); process.exit(1); });

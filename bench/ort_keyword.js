// ort_keyword.js MODELS_DIR HEAD AUDIO.raw — openWakeWord's streaming loop in onnxruntime-node:
// for every 80 ms (1280 samples) the mel model on that step plus 480 samples of context, the
// embedding model on the last 76 mel frames, the head on the last 16 embeddings
// (openwakeword/utils.py _streaming_features and model.py predict), one thread, as
// `graft keyword listen --stream` runs it. AUDIO.raw is 16-bit 16 kHz mono PCM.
// Prints: onnxruntime rtf <audio seconds per CPU second> cpu <s> audio <s> peak_rss <MB> MB
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [dir, head, audio] = process.argv.slice(2);
  const opt = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' };
  const mel = await ort.InferenceSession.create(dir + '/melspectrogram.onnx', opt);
  const emb = await ort.InferenceSession.create(dir + '/embedding_model.onnx', opt);
  const hd = await ort.InferenceSession.create(head, opt);
  const raw = fs.readFileSync(audio);
  const n = raw.length >> 1;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = raw.readInt16LE(2 * i);
  const frames = [], embs = [];
  const chunk = new Float32Array(1760);
  let scores = 0, maxScore = 0;
  const c0 = process.cpuUsage();
  for (let c = 0; 1280 * c < n; c++) {
    chunk.fill(0);
    chunk.set(x.subarray(1280 * c, Math.min(n, 1280 * c + 1760)));
    const m = (await mel.run({ [mel.inputNames[0]]: new ort.Tensor('float32', chunk, [1, 1760]) }))[mel.outputNames[0]].data;
    for (let f = 0; f < 8; f++) frames.push(Float32Array.from(m.subarray(32 * f, 32 * f + 32), v => v / 10 + 2));
    if (frames.length > 80) frames.splice(0, frames.length - 80);
    if (c < 9) continue;
    const win = new Float32Array(76 * 32);
    for (let f = 0; f < 76; f++) win.set(frames[4 + f], 32 * f);
    const e = (await emb.run({ [emb.inputNames[0]]: new ort.Tensor('float32', win, [1, 76, 32, 1]) }))[emb.outputNames[0]].data;
    embs.push(Float32Array.from(e));
    if (embs.length > 16) embs.shift();
    if (embs.length < 16) continue;
    const h = new Float32Array(16 * 96);
    embs.forEach((v, i) => h.set(v, 96 * i));
    const s = (await hd.run({ [hd.inputNames[0]]: new ort.Tensor('float32', h, [1, 16, 96]) }))[hd.outputNames[0]].data[0];
    scores++;
    maxScore = Math.max(maxScore, s);
  }
  const u = process.cpuUsage(c0);
  const cpu = (u.user + u.system) / 1e6, secs = n / 16000;
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(`onnxruntime rtf ${(secs / cpu).toFixed(1)} cpu ${cpu.toFixed(3)} audio ${secs.toFixed(1)} scores ${scores} ` +
              `max ${maxScore.toFixed(4)} peak_rss ${rss.toFixed(0)} MB`);
}
main().catch(e => { console.error('ort_keyword: ' + e.message); process.exit(1); });

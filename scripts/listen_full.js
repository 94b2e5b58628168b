#!/usr/bin/env node
// listen_full.js — a keyword detector exported by `graft keyword export` (one ONNX model), run by
// onnxruntime-node over a recording, as `graft keyword listen` runs the head:
//
//   node scripts/listen_full.js DETECTOR_full.onnx RECORDING.wav [THRESHOLD (0.5)]
//
// THRESHOLD: the head's, which `graft keyword export` prints (a head graft trained stores it as
// the metadata graft.threshold, which onnxruntime-node does not expose); openWakeWord's heads use
// 0.5.
// RECORDING: 16 kHz mono 16-bit PCM WAV (convert others with sox IN -r 16000 -c 1 -b 16 OUT.wav).
// The model reads the last 32480 samples (2.03 s) and scores the 80 ms step ending with them;
// every 1280 samples is one step. A detection is a score >= THRESHOLD at least 1 s after the
// previous one. onnxruntime-node comes from NODE_PATH or $GRAFT_CACHE/node_modules.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const cache = process.env.GRAFT_CACHE || path.join(os.homedir(), '.cache', 'graft');
let ort;
try { ort = require('onnxruntime-node'); } catch (e) { ort = require(path.join(cache, 'node_modules', 'onnxruntime-node')); }

function fail(msg) { process.stderr.write(`listen_full: ${msg}\n`); process.exit(1); }

// The samples of a 16 kHz mono 16-bit PCM WAV.
function readWav(file) {
  const b = fs.readFileSync(file);
  if (b.length < 12 || b.toString('latin1', 0, 4) !== 'RIFF' || b.toString('latin1', 8, 12) !== 'WAVE') fail(`${file}: not a WAV file`);
  let fmt = null;
  for (let p = 12; p + 8 <= b.length;) {
    const id = b.toString('latin1', p, p + 4), size = b.readUInt32LE(p + 4);
    if (id === 'fmt ') fmt = { format: b.readUInt16LE(p + 8), channels: b.readUInt16LE(p + 10), rate: b.readUInt32LE(p + 12), bits: b.readUInt16LE(p + 22) };
    if (id === 'data') {
      if (!fmt || fmt.format !== 1 || fmt.channels !== 1 || fmt.rate !== 16000 || fmt.bits !== 16)
        fail(`${file}: needs 16 kHz mono 16-bit PCM (sox IN -r 16000 -c 1 -b 16 OUT.wav)`);
      const n = Math.min(size, b.length - p - 8) >> 1;
      return Int16Array.from({ length: n }, (_, i) => b.readInt16LE(p + 8 + 2 * i));
    }
    p += 8 + size + (size & 1);
  }
  fail(`${file}: no data chunk`);
}

(async () => {
  const [model, wav, thrArg] = process.argv.slice(2);
  if (!model || !wav) fail('usage: node listen_full.js DETECTOR_full.onnx RECORDING.wav [THRESHOLD]');
  const thr = thrArg === undefined ? 0.5 : Number(thrArg);
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const pcm = readWav(wav), S = 32480, hop = 1280;
  let count = 0, last = -Infinity;
  for (let t = 0; t + S <= pcm.length; t += hop) {
    const x = Float32Array.from(pcm.subarray(t, t + S), (v) => v / 32768);
    const out = await session.run({ audio: new ort.Tensor('float32', x, [1, S]) });
    // the time the step's last mel frame ends (its 512-sample window stops 128 samples before
    // the input does), the time `graft keyword listen` prints
    const score = out[session.outputNames[0]].data[0], end = (t + S - 128) / 16000;
    if (score >= thr && end - last >= 1) {
      console.log(`detected at ${end.toFixed(2)} s  score ${score.toFixed(4)}`);
      count++;
      last = end;
    }
  }
  console.log(`${count} detections in ${(pcm.length / 16000).toFixed(1)} s of audio`);
})().catch((e) => fail(e.message));

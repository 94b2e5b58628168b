#!/usr/bin/env node
// ort_run.js — runs an ONNX model with onnxruntime-node (the reference runtime for graft's
// model-parity tests) on .npy inputs and writes its first output as .npy.
//
//   node ort_run.js MODEL.onnx IN.npy OUT.npy [IN2.npy ...]
//
// IN.npy feeds the model's first input, IN2.npy its second, and so on (in the model's input
// order). CPU execution provider, one thread, so the reference is the same on every machine.
// onnxruntime-node comes from the npm cache the setup fills: found through NODE_PATH, or else
// in $GRAFT_CACHE/node_modules (default ~/.cache/graft). The .npy reader/writer below handles
// little-endian float32 and int64 in C order, which is all the tests need.
// Environment: ORT_THREADS (intra-op threads, default 1); ORT_BATCH (run a single-input model on
// slices of that many rows of the first dimension and concatenate the outputs; default: at once).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const DTYPES = {
  '<f4': { ort: 'float32', array: Float32Array, size: 4 },
  '<i8': { ort: 'int64', array: BigInt64Array, size: 8 },
};

function fail(msg) {
  process.stderr.write(`ort_run: ${msg}\n`);
  process.exit(1);
}

// Reads a .npy file (format versions 1, 2 and 3) into { dtype, shape, data }.
function npyRead(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY')
    fail(`${file}: not a .npy file`);
  const major = buf[6];
  let hlen, hstart;
  if (major === 1) { hlen = buf.readUInt16LE(8); hstart = 10; }
  else if (major === 2 || major === 3) { hlen = buf.readUInt32LE(8); hstart = 12; }
  else fail(`${file}: unknown .npy version ${major}`);
  if (hstart + hlen > buf.length) fail(`${file}: truncated header`);
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeM = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeM) fail(`${file}: malformed header ${JSON.stringify(header)}`);
  if (fortran[1] === 'True') fail(`${file}: Fortran order is not supported`);
  const dt = DTYPES[descr[1]];
  if (!dt) fail(`${file}: dtype ${descr[1]} not supported (only <f4 and <i8)`);
  const shape = shapeM[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) fail(`${file}: bad shape (${shapeM[1]})`);
  const n = shape.reduce((a, b) => a * b, 1);
  const start = hstart + hlen;
  if (buf.length - start < n * dt.size)
    fail(`${file}: ${buf.length - start} data bytes, expected ${n * dt.size}`);
  // Copy into a fresh, aligned array (a Buffer's byteOffset need not be a multiple of 8).
  const data = new dt.array(n);
  buf.copy(new Uint8Array(data.buffer), 0, start, start + n * dt.size);
  return { dtype: descr[1], shape, data };
}

// Writes a typed array as .npy version 1.0, header padded to a multiple of 64 bytes.
function npyWrite(file, dtype, shape, data) {
  const shp = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shp}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    const cache = process.env.GRAFT_CACHE || path.join(os.homedir(), '.cache', 'graft');
    const p = path.join(cache, 'node_modules', 'onnxruntime-node');
    try {
      return require(p);
    } catch (e2) {
      fail(`cannot load onnxruntime-node (not on NODE_PATH, nor in ${p}): ${e2.message}\n` +
           '  run scripts/setup.sh (or make setup) to install it');
    }
  }
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 3) fail('usage: node ort_run.js MODEL.onnx IN.npy OUT.npy [IN2.npy ...]');
  const [modelPath, firstIn, outPath, ...moreIn] = args;
  const inPaths = [firstIn, ...moreIn];
  const ort = loadOrt();
  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'],
    intraOpNumThreads: +(process.env.ORT_THREADS || 1),
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  if (inPaths.length !== session.inputNames.length)
    fail(`${modelPath} has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}), ` +
         `got ${inPaths.length} .npy files`);
  const feeds = {};
  inPaths.forEach((p, i) => {
    const a = npyRead(p);
    feeds[session.inputNames[i]] = new ort.Tensor(DTYPES[a.dtype].ort, a.data, a.shape);
  });
  const t0 = process.hrtime.bigint();
  const name = session.outputNames[0];
  const batch = +(process.env.ORT_BATCH || 0);
  let out;
  if (batch > 0 && inPaths.length === 1) {  // slices of the first dimension, outputs concatenated
    const x = feeds[session.inputNames[0]], n = x.dims[0], row = x.data.length / Math.max(n, 1);
    const parts = [];
    let dims = null;
    for (let i = 0; i < n; i += batch) {
      const m = Math.min(batch, n - i);
      const t = new ort.Tensor(x.type, x.data.subarray(i * row, (i + m) * row), [m, ...x.dims.slice(1)]);
      const r = (await session.run({ [session.inputNames[0]]: t }))[name];
      parts.push(r);
      dims = r.dims;
    }
    const total = parts.reduce((a, r) => a + r.data.length, 0);
    const data = new parts[0].data.constructor(total);
    let at = 0;
    for (const r of parts) { data.set(r.data, at); at += r.data.length; }
    out = { type: parts[0].type, dims: [n, ...dims.slice(1)], data };
  } else {
    out = (await session.run(feeds))[name];
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const dtype = Object.keys(DTYPES).find((k) => DTYPES[k].ort === out.type);
  if (!dtype) fail(`output '${name}' has type ${out.type}; only float32 and int64 can be written`);
  npyWrite(outPath, dtype, out.dims, out.data);
  process.stderr.write(`ort_run: ${path.basename(modelPath)}: output '${name}' ` +
                       `(${out.dims.join('x')}) in ${ms.toFixed(1)} ms -> ${outPath}\n`);
}

main().catch((e) => fail(e.message || String(e)));

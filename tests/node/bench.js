// Encode speed of the reference on one text, one thread: prints MB/s.
// Usage: node bench.js TOKENIZER_JSON FILE [SECONDS]
const fs = require('fs');
process.env.RAYON_NUM_THREADS = '1';
const {Tokenizer} = require('tokenizers');
(async () => {
  const [tpath, file, secs] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(tpath);
  const text = fs.readFileSync(file, 'utf8');
  const bytes = Buffer.byteLength(text, 'utf8');
  await tok.encode(text, null, {addSpecialTokens: false});  // warm up (cache, JIT)
  const limit = parseFloat(secs || '2');
  let n = 0;
  const t0 = process.hrtime.bigint();
  let dt = 0;
  do {
    await tok.encode(text, null, {addSpecialTokens: false});
    n++;
    dt = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (dt < limit);
  console.log((bytes * n / dt / 1e6).toFixed(2));
})().catch((e) => { console.error(String(e)); process.exit(1); });

// The reference trainer: Hugging Face tokenizers' BpeTrainer through the
// Node binding, which offers only the default trainer (vocabulary 30,000,
// no initial alphabet, no special tokens, min_frequency 0).
// Usage: node train.js bytelevel|sentencepiece-bpe OUT.json FILE...
// Writes the trained tokenizer.json; prints the seconds train() took and
// the number of merges learned.
const {Tokenizer, BPE, byteLevelPreTokenizer, metaspacePreTokenizer} = require('tokenizers');
const [kind, out, ...files] = process.argv.slice(2);
const tok = new Tokenizer(BPE.empty());
if (kind === 'bytelevel') tok.setPreTokenizer(byteLevelPreTokenizer(false, true));
else if (kind === 'sentencepiece-bpe') tok.setPreTokenizer(metaspacePreTokenizer('\u2581', 'first', true));
else { console.error('unknown kind ' + kind); process.exit(1); }
const t0 = process.hrtime.bigint();
tok.train(files);
const dt = Number(process.hrtime.bigint() - t0) / 1e9;
tok.save(out, false);
const merges = JSON.parse(require('fs').readFileSync(out)).model.merges.length;
console.log(dt.toFixed(3) + ' ' + merges);

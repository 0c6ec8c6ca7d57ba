// The reference: Hugging Face's tokenizers (Rust, Node binding) on files.
// Usage: node reference.js TOKENIZER_JSON OUT_DIR FILE...
// For each FILE writes OUT_DIR/<basename>.ids (ids, no special tokens),
// .sids (with the post-processor's special tokens) and .dec (the decode of
// .ids, special tokens kept), so a test compares them with ours.
const fs = require('fs');
const path = require('path');
const {Tokenizer} = require('tokenizers');
(async () => {
  const [tpath, out, ...files] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(tpath);
  fs.mkdirSync(out, {recursive: true});
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    const base = path.join(out, path.basename(f));
    const ids = (await tok.encode(text, null, {addSpecialTokens: false})).getIds();
    const sids = (await tok.encode(text, null, {addSpecialTokens: true})).getIds();
    fs.writeFileSync(base + '.ids', ids.join(' ') + '\n');
    fs.writeFileSync(base + '.sids', sids.join(' ') + '\n');
    fs.writeFileSync(base + '.dec', await tok.decode(ids, false));
  }
})().catch((e) => { console.error(String(e)); process.exit(1); });

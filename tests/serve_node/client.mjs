// client.mjs: the official openai client against `retnet serve`.
// Usage: node client.mjs http://127.0.0.1:PORT/v1 API_KEY
// Prints one line per check, "ok NAME" or "fail NAME: why"; exit 1 on a failure.
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: apiKey || "none", timeout: 30000, maxRetries: 0 });
let failed = 0;
const check = (name, cond, why) => {
  if (cond) console.log(`ok ${name}`);
  else { failed++; console.log(`fail ${name}: ${why}`); }
};

try {
  const c = await client.completions.create({ model: "m", prompt: "Hello", max_tokens: 8, temperature: 0 });
  check("completion", c.object === "text_completion" && typeof c.choices[0].text === "string" &&
        c.usage.completion_tokens === 8 && c.choices[0].finish_reason === "length", JSON.stringify(c));

  const s = await client.completions.create({ model: "m", prompt: "Hello", max_tokens: 8, temperature: 0, stream: true });
  let text = "", chunks = 0, finish = null;
  for await (const ch of s) { chunks++; text += ch.choices[0]?.text ?? ""; finish = ch.choices[0]?.finish_reason ?? finish; }
  check("stream", chunks >= 2 && finish === "length" && text === c.choices[0].text,
        `chunks ${chunks} finish ${finish} text ${JSON.stringify(text)} vs ${JSON.stringify(c.choices[0].text)}`);

  const m = await client.chat.completions.create({ model: "m", messages: [{ role: "system", content: "Be brief." },
    { role: "user", content: "Hi" }], max_tokens: 6, temperature: 0 });
  check("chat", m.object === "chat.completion" && m.choices[0].message.role === "assistant" &&
        typeof m.choices[0].message.content === "string" && m.usage.total_tokens > 0, JSON.stringify(m));

  const ms = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Hi" }],
    max_tokens: 6, temperature: 0, stream: true });
  let ct = "", role = null;
  for await (const ch of ms) { role = ch.choices[0]?.delta?.role ?? role; ct += ch.choices[0]?.delta?.content ?? ""; }
  check("chat stream", role === "assistant", `role ${role} text ${JSON.stringify(ct)}`);

  // n choices with logprobs (the legacy shape), and chat logprobs, as the client types them
  const nl = await client.completions.create({ model: "m", prompt: "Hello", max_tokens: 6, temperature: 0, n: 2, logprobs: 2 });
  const lp = nl.choices[0].logprobs;
  check("n + logprobs", nl.choices.length === 2 && nl.choices[1].index === 1 && nl.choices[1].text === nl.choices[0].text &&
        lp.tokens.length === 6 && lp.token_logprobs.every((x) => x <= 0) && lp.text_offset[0] === 0 &&
        // greedy: no alternative above the token (byte tokens that print alike share a key)
        lp.top_logprobs.every((d, i) => Object.values(d).every((x) => x <= lp.token_logprobs[i] + 1e-6)) &&
        nl.usage.completion_tokens === 12, JSON.stringify(nl));
  const cl = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Hi" }],
    max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3 });
  const ce = cl.choices[0].logprobs?.content ?? [];
  check("chat logprobs", ce.length === cl.usage.completion_tokens && ce.every((e) => e.top_logprobs.length === 3 &&
        Array.isArray(e.bytes) && Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-6), JSON.stringify(cl.choices[0]));

  // several prompts in one request; an echoed prompt scored (lm-evaluation-harness's request)
  const mp = await client.completions.create({ model: "m", prompt: ["Hello", "Hi"], max_tokens: 4, temperature: 0 });
  const one = await client.completions.create({ model: "m", prompt: "Hi", max_tokens: 4, temperature: 0 });
  check("prompts", mp.choices.length === 2 && mp.choices[0].index === 0 && mp.choices[1].index === 1 &&
        mp.choices[0].text === c.choices[0].text.slice(0, mp.choices[0].text.length) &&
        mp.choices[1].text === one.choices[0].text && mp.usage.completion_tokens === 8, JSON.stringify(mp));
  const ev = await client.completions.create({ model: "m", prompt: "Hello there", max_tokens: 0, echo: true, logprobs: 1 });
  const el = ev.choices[0].logprobs;
  check("echo logprobs", ev.choices[0].text === "Hello there" && el.tokens.join("") === "Hello there" &&
        el.token_logprobs[0] === null && el.token_logprobs.slice(1).every((x) => x <= 0), JSON.stringify(ev.choices[0]));

  const models = await client.models.list();
  check("models", models.data.length === 1 && models.data[0].object === "model", JSON.stringify(models.data));

  try {
    await client.completions.create({ model: "m", prompt: "x", max_tokens: -1 });
    check("error 400", false, "no error");
  } catch (e) {
    check("error 400", e.status === 400 && /max_tokens/.test(e.message), `${e.status} ${e.message}`);
  }
} catch (e) {
  failed++;
  console.log(`fail exception: ${e.stack || e}`);
}
process.exit(failed ? 1 : 0);

// Drives `avengers serve` through the official `openai` or `ollama` npm client under Node, for
// tests/clients/test_node_clients.py.
//
//   node drive.mjs '{"client": "openai", "url": "http://127.0.0.1:PORT", "calls": [...]}'
//
// Each call is {"op": "models"} | {"op": "model", "model"} (the openai client's retrieve) |
// {"op": "show", "model"} | {"op": "chat", "model", "messages", "stream", "extra"} |
// {"op": "generate", "model", "prompt", "stream", "extra"} ("show" and "generate" are the
// ollama client's; `extra` is merged into the request). Prints one JSON array on stdout, one
// result per call: {"ok": true, ...} with the text, finish reason, `avengers` field, chunk
// count, usage (openai) or eval count (ollama) and model list as the client returned them, or
// {"ok": false, "error": {"name", "message", "cause", "status"}} with what the client threw.
// Exits 0 unless the job itself is malformed.
import { Ollama } from 'ollama';
import OpenAI from 'openai';

const job = JSON.parse(process.argv[2]);

async function openaiCall(client, call) {
  if (call.op === 'models') {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    return { models: ids };
  }
  if (call.op === 'model') {
    const m = await client.models.retrieve(call.model);
    return { id: m.id, object: m.object };
  }
  if (call.op !== 'chat') throw new Error(`openai: unknown op ${call.op}`);
  const body = { model: call.model, messages: call.messages, stream: !!call.stream,
                 ...(call.extra || {}) };
  if (!call.stream) {
    const res = await client.chat.completions.create(body);
    return { text: res.choices[0].message.content, finish: res.choices[0].finish_reason,
             avengers: res.avengers ?? null, model: res.model, chunks: 0,
             usage: res.usage ?? null };
  }
  let text = '', finish = null, avengers = null, chunks = 0, model = null, usage = null;
  for await (const chunk of await client.chat.completions.create(body)) {
    chunks += 1;
    model = chunk.model ?? model;
    const choice = chunk.choices?.[0];
    text += choice?.delta?.content ?? '';
    if (choice?.finish_reason) finish = choice.finish_reason;
    if (chunk.avengers) avengers = chunk.avengers;
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, finish, avengers, model, chunks, usage };
}

async function ollamaCall(client, call) {
  if (call.op === 'models') {
    const res = await client.list();
    return { models: res.models.map((m) => m.name), details: res.models.map((m) => m.details) };
  }
  if (call.op === 'show') {
    const res = await client.show({ model: call.model });
    return { details: res.details ?? null };
  }
  const chat = call.op === 'chat';
  if (!chat && call.op !== 'generate') throw new Error(`ollama: unknown op ${call.op}`);
  const body = { model: call.model, stream: !!call.stream, ...(call.extra || {}) };
  if (chat) body.messages = call.messages; else if (call.prompt !== undefined) body.prompt = call.prompt;
  const piece = (part) => (chat ? part.message?.content : part.response) ?? '';
  if (!call.stream) {
    const res = chat ? await client.chat(body) : await client.generate(body);
    return { text: piece(res), finish: res.done_reason ?? null, done: res.done,
             avengers: res.avengers ?? null, model: res.model, chunks: 0,
             eval_count: res.eval_count ?? null };
  }
  let text = '', finish = null, avengers = null, chunks = 0, done = false, model = null;
  let evalCount = null;
  for await (const part of chat ? await client.chat(body) : await client.generate(body)) {
    chunks += 1;
    text += piece(part);
    model = part.model ?? model;
    if (part.done) { done = true; finish = part.done_reason ?? null; }
    if (part.done) evalCount = part.eval_count ?? null;
    if (part.avengers) avengers = part.avengers;
  }
  return { text, finish, done, avengers, model, chunks, eval_count: evalCount };
}

const client = job.client === 'openai'
  ? new OpenAI({ baseURL: `${job.url}/v1`, apiKey: job.key ?? '-', maxRetries: 0,
                 timeout: 60_000 })
  : new Ollama({ host: job.url });
const drive = job.client === 'openai' ? openaiCall : ollamaCall;
const results = [];
for (const call of job.calls) {
  try {
    results.push({ ok: true, ...(await drive(client, call)) });
  } catch (e) {
    const causes = [];  // fetch's TypeError hides undici's own code a level or two down
    for (let c = e.cause; c && causes.length < 4; c = c.cause) causes.push(c.code ?? c.message);
    const cause = causes.length ? causes.join(' <- ') : null;
    results.push({ ok: false, error: { name: e.name ?? e.constructor?.name,
                                        message: String(e.message ?? e), cause,
                                        status: e.status ?? e.status_code ?? null } });
  }
}
process.stdout.write(JSON.stringify(results));

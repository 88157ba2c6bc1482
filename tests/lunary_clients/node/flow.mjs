// Run the Lunary "Chats & Threads" flow with the REAL npm `lunary` SDK (1.0.18) in Node.
//
//   cd tests/lunary_clients/node && npm ci
//   node flow.mjs --api-url http://127.0.0.1:PORT [--app-id test-app-key]
//   (or LUNARY_API_URL=... node flow.mjs)
//
// Starts its own fake OpenAI-compatible server on 127.0.0.1 (plain JSON, SSE when
// "stream": true, a tool call when "tools" are given, HTTP 500 for model "fail-500"),
// runs the flow, `await lunary.flush()`es and prints the ids the SDK returned as JSON
// (the JS SDK sends ids unchanged, so they are also the wire ids).
//
// Config read by the SDK at import (dist/chunk-AX3726TK.js, Lunary constructor):
//   app id: LUNARY_PRIVATE_KEY || LUNARY_PUBLIC_KEY || LUNARY_APP_ID || LLMONITOR_APP_ID
//   url   : LUNARY_API_URL || LLMONITOR_API_URL || https://api.lunary.ai
// lunary.init({appId, apiUrl}) overrides both.
import http from "node:http"
import { parseArgs } from "node:util"
import lunary from "lunary"
import { monitorOpenAI } from "lunary/openai"
import OpenAI from "openai"

const { values: args } = parseArgs({
  options: {
    "api-url": { type: "string", default: process.env.LUNARY_API_URL },
    "app-id": { type: "string", default: process.env.LUNARY_PUBLIC_KEY || "test-app-key" },
    // use this OpenAI-compatible server instead of the built-in fake (e.g. otel_lunary._fake_llm.FakeLLM)
    "openai-base-url": { type: "string" },
    "error-model": { type: "string", default: "fail-500" },
  },
})
if (!args["api-url"]) {
  console.error("--api-url or LUNARY_API_URL is required")
  process.exit(2)
}
const apiUrl = args["api-url"].replace(/\/$/, "")
const appId = args["app-id"]

// ---------------------------------------------------------------- fake OpenAI
function startFakeOpenAI() {
  const server = http.createServer((req, res) => {
    let body = ""
    req.on("data", (c) => (body += c))
    req.on("end", () => {
      const r = body ? JSON.parse(body) : {}
      const json = (code, obj) => {
        const data = JSON.stringify(obj)
        res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) })
        res.end(data)
      }
      if (!req.url.endsWith("/chat/completions")) return json(404, { error: { message: "not found" } })
      const model = r.model || "gpt-4o"
      if (model === "fail-500")
        return json(500, { error: { message: "fake upstream failure", type: "server_error", code: null } })
      const created = Math.floor(Date.now() / 1000)
      if (r.stream) {
        res.writeHead(200, { "Content-Type": "text/event-stream", Connection: "close" })
        const base = { id: "chatcmpl-stream-1", object: "chat.completion.chunk", created, model: model + "-2024-08-06" }
        for (const delta of [{ role: "assistant", content: "" }, { content: "Rainy" }, { content: ", 57F" }])
          res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`)
        res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\n`)
        res.end("data: [DONE]\n\n")
        return
      }
      const message = r.tools
        ? {
            role: "assistant",
            content: null,
            tool_calls: [
              { id: "call_weather_1", type: "function", function: { name: "get_weather", arguments: '{"location": "Paris"}' } },
            ],
          }
        : { role: "assistant", content: "Rainy, 57F" }
      json(200, {
        id: "chatcmpl-1",
        object: "chat.completion",
        created,
        model: model + "-2024-08-06",
        choices: [{ index: 0, message, finish_reason: r.tools ? "tool_calls" : "stop", logprobs: null }],
        usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, prompt_tokens_details: { cached_tokens: 3 } },
      })
    })
  })
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}/v1` })),
  )
}

// ---------------------------------------------------------------- the flow
const fake = args["openai-base-url"] ? { url: args["openai-base-url"], server: { close() {} } } : await startFakeOpenAI()
lunary.init({ appId, apiUrl })
const openai = monitorOpenAI(new OpenAI({ baseURL: fake.url, apiKey: "sk-fake", maxRetries: 0 }))
const ids = {}

// 1. new thread, user message (JS Thread has no per-message userId: it comes from openThread)
const tNew = lunary.openThread()
ids.thread = tNew.id
ids.msg_hello = tNew.trackMessage({ role: "user", content: "Hello, please help me" })

// 2. resume with id + tags (+ user, which the JS SDK only takes at thread level)
const thread = lunary.openThread({ id: tNew.id, tags: ["support"], userId: "user1", userProps: { email: "hello@test.com" } })
ids.msg_user = thread.trackMessage({ role: "user", content: "What's the weather in Paris?", tags: ["faq"], extra: { source: "web" } })

// 3. LLM call reconciled with .setParent(msgId); tools -> the fake answers with a tool call
const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Weather for a city",
      parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
    },
  },
]
const res = await openai.chat.completions
  .create({
    model: "gpt-4o",
    temperature: 0.2,
    max_tokens: 100,
    messages: [{ role: "user", content: "What's the weather in Paris?" }],
    tools,
    user: "user1",
    tags: ["llm-tag"],
  })
  .setParent(ids.msg_user)
const toolCalls = res.choices[0].message.tool_calls

// 4. assistant message with tool_calls, then the tool answer
ids.msg_assistant_tool_calls = thread.trackMessage({ role: "assistant", content: null, tool_calls: toolCalls })
ids.msg_tool = thread.trackMessage({ role: "tool", tool_call_id: toolCalls[0].id, content: '{"temperature": 57}' })

// 5. system message with a caller-chosen id
ids.msg_system = thread.trackMessage({ id: "sys-1", role: "system", content: "You are a weather bot." })

// 6. LLM call without parent (the JS SDK has no `with parent` block; setParent is per call)
const res2 = await openai.chat.completions.create({
  model: "gpt-4o",
  messages: [
    { role: "user", content: "What's the weather in Paris?" },
    { role: "tool", tool_call_id: "call_weather_1", content: '{"temperature": 57}' },
  ],
})
ids.msg_assistant = thread.trackMessage({ role: "assistant", content: res2.choices[0].message.content })
ids.msg_assistant_retry = thread.trackMessage({ role: "assistant", content: "It is rainy, 57F.", isRetry: true })

// 7. custom events (JS thread.trackEvent(name, metadata): no user arguments)
thread.trackEvent("event-name")
thread.trackEvent("open-document", { documentName: "my-document.pdf" })

// 8. feedback: set, remove, other keys; plus the JS-only overwrite flag
lunary.trackFeedback(ids.msg_assistant, { thumb: "up" })
lunary.trackFeedback(ids.msg_assistant, { thumb: null })
lunary.trackFeedback(ids.msg_assistant, { comment: "x", rating: 4 })
lunary.trackFeedback(ids.msg_assistant, { emoji: "tada" }, true)

// 9. streaming call and error call, both with setParent
const stream = await openai.chat.completions
  .create({ model: "gpt-4o", stream: true, messages: [{ role: "user", content: "Weather in Paris, streamed?" }] })
  .setParent(ids.msg_user)
let streamed = ""
for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content || ""
ids.stream_text = streamed
try {
  await openai.chat.completions
    .create({ model: args["error-model"], messages: [{ role: "user", content: "boom" }] })
    .setParent(ids.msg_user)
} catch (e) {
  ids.error_call = `${e.constructor.name}: ${e.status}`
}

// 10. agent + tool (wrapAgent / wrapTool), agent reconciled with setParent
const getWeather = lunary.wrapTool(async function get_weather(location) {
  return { temperature: 57, location }
})
const agent = lunary.wrapAgent(async function WeatherAgent(query) {
  const w = await getWeather("Paris")
  const r = await openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: query }] })
  return `${r.choices[0].message.content} (${w.temperature}F)`
})
ids.agent_output = await agent("Weather in Paris?").setParent(ids.msg_user)

// 11. userProps on a thread without userId (the SDK warns and drops userProps)
const tAnon = lunary.openThread({ userProps: { plan: "pro" } })
ids.thread_anon = tAnon.id
ids.msg_anon = tAnon.trackMessage({ role: "user", content: "hi" })

await lunary.flush()
// flush() returns once the fetch resolved; a second flush covers anything queued meanwhile
await lunary.flush()
fake.server.close()
console.log(JSON.stringify({ sdk: "lunary-js", version: "1.0.18", app_id: appId, returned_ids: ids }, null, 2))

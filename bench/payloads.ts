/**
 * The replies the benchmark's fake server sends, built once: the same text
 * in the three wire protocols, as a JSON body and as an SSE event stream.
 * Clients import `expectedText` to check they received every character.
 *
 * The events mirror what the real services send (field for field, so the
 * peers' own schema validation accepts them), including the bookkeeping
 * events that carry no text: OpenAI's role-only first chunk and usage
 * chunk, Anthropic's `message_start`, `ping` and `content_block_stop`, the
 * Responses API's `response.created` and friends.
 */

/** The wire protocols the fake server speaks. */
export type Protocol = "chat" | "messages" | "responses"

/**
 * How the server delivers a stream: all at once, one event per write, first event then the rest, or all at
 * once after a pause (as a model that thinks, then answers in one write), or one event per write at a real
 * model's pace.
 */
export type Mode = "fast" | "paced" | "ttft" | "delayed" | "model"

/** The model name every request uses and every reply names. */
export const model = "bench-model"

/** Text deltas per streamed reply. */
export const chunkCount = 200

const words = [
  "The",
  " quick",
  " brown",
  " fox",
  " jumps",
  " over",
  " the",
  " lazy",
  " dog",
  ".",
  " Café",
  " crème",
  " brûlée",
  " —",
  " naïve",
  " façade",
  " 🚀",
  " works",
  " fine",
  "!",
  " Then",
  " it",
  " rests",
  " near",
  " the",
  " river",
  " bank",
  ",",
  " calm",
  "?"
]

/** The text deltas of one reply, in order (ASCII and multi-byte UTF-8, sentence ends included). */
export const textChunks: ReadonlyArray<string> = Array.from({ length: chunkCount }, (_, i) => words[i % words.length]!)

/** The whole reply text: what every client must reassemble exactly. */
export const expectedText = textChunks.join("")

/** One encoded reply: the JSON body, and the SSE stream split into the events the server may pace. */
export interface Reply {
  readonly json: string
  /** Every SSE event, each a complete `event:`/`data:` block ending in a blank line. */
  readonly events: ReadonlyArray<string>
  /** How many leading events to send before the rest in `ttft` mode: up to and including the first text delta. */
  readonly firstTextEvent: number
}

const sse = (data: unknown, event?: string): string =>
  `${event === undefined ? "" : `event: ${event}\n`}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`

const created = 1_700_000_000

/** One `chat.completion.chunk` of the response `id`. */
const chatChunk = (id: string, delta: object, finishReason: string | null) => ({
  id,
  object: "chat.completion.chunk",
  created,
  model,
  system_fingerprint: "fp_bench",
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }]
})

/** OpenAI Chat Completions: `chat.completion` and `chat.completion.chunk` objects. */
const chatReply = (chunks: ReadonlyArray<string> = textChunks): Reply => {
  const id = "chatcmpl-bench"
  const usage = { prompt_tokens: 20, completion_tokens: chunkCount, total_tokens: 20 + chunkCount }
  const chunk = (delta: object, finishReason: string | null) => chatChunk(id, delta, finishReason)
  const events = [
    sse(chunk({ role: "assistant", content: "", refusal: null }, null)),
    ...chunks.map((text) => sse(chunk({ content: text }, null))),
    sse(chunk({}, "stop")),
    sse({ id, object: "chat.completion.chunk", created, model, system_fingerprint: "fp_bench", choices: [], usage }),
    sse("[DONE]")
  ]
  const json = JSON.stringify({
    id,
    object: "chat.completion",
    created,
    model,
    choices: [{
      index: 0,
      message: { role: "assistant", content: chunks.join(""), refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: "stop"
    }],
    usage,
    system_fingerprint: "fp_bench"
  })
  return { json, events, firstTextEvent: 2 }
}

/** Anthropic Messages: a `message` object and the named event stream. */
const messagesReply = (chunks: ReadonlyArray<string> = textChunks): Reply => {
  const id = "msg_bench"
  const usage = {
    input_tokens: 20,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: chunkCount,
    service_tier: "standard"
  }
  const events = [
    sse({
      type: "message_start",
      message: {
        id,
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...usage, output_tokens: 1 }
      }
    }, "message_start"),
    sse({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }, "content_block_start"),
    sse({ type: "ping" }, "ping"),
    ...chunks.map((text) =>
      sse({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }, "content_block_delta")
    ),
    sse({ type: "content_block_stop", index: 0 }, "content_block_stop"),
    sse({
      type: "message_delta",
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: { output_tokens: chunkCount }
    }, "message_delta"),
    sse({ type: "message_stop" }, "message_stop")
  ]
  const json = JSON.stringify({
    id,
    type: "message",
    role: "assistant",
    model,
    content: [{ type: "text", text: chunks.join("") }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage
  })
  return { json, events, firstTextEvent: 4 }
}

/** OpenAI Responses (what @effect/ai-openai speaks): a `response` object and its event stream. */
const responsesReply = (): Reply => {
  const itemId = "msg_bench"
  const part = (text: string) => ({ type: "output_text", annotations: [], logprobs: [], text })
  const item = (status: string, content: Array<object>) => ({
    id: itemId,
    type: "message",
    status,
    content,
    role: "assistant"
  })
  const response = (status: string, output: Array<object>, usage: object | null) => ({
    id: "resp_bench",
    object: "response",
    created_at: created,
    status,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model,
    output,
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: true,
    temperature: 1,
    text: { format: { type: "text" } },
    tool_choice: "auto",
    tools: [],
    top_p: 1,
    truncation: "disabled",
    usage,
    user: null,
    metadata: {}
  })
  const usage = {
    input_tokens: 20,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: chunkCount,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 20 + chunkCount
  }
  const done = item("completed", [part(expectedText)])
  let sequence = 0
  const event = (type: string, fields: object) => sse({ type, sequence_number: sequence++, ...fields }, type)
  const events = [
    event("response.created", { response: response("in_progress", [], null) }),
    event("response.in_progress", { response: response("in_progress", [], null) }),
    event("response.output_item.added", { output_index: 0, item: item("in_progress", []) }),
    event("response.content_part.added", { item_id: itemId, output_index: 0, content_index: 0, part: part("") }),
    ...textChunks.map((delta) =>
      event("response.output_text.delta", { item_id: itemId, output_index: 0, content_index: 0, delta, logprobs: [] })
    ),
    event("response.output_text.done", {
      item_id: itemId,
      output_index: 0,
      content_index: 0,
      text: expectedText,
      logprobs: []
    }),
    event("response.content_part.done", {
      item_id: itemId,
      output_index: 0,
      content_index: 0,
      part: part(expectedText)
    }),
    event("response.output_item.done", { output_index: 0, item: done }),
    event("response.completed", { response: response("completed", [done], usage) })
  ]
  return { json: JSON.stringify(response("completed", [done], usage)), events, firstTextEvent: 5 }
}

/** The replies, by protocol. */
export const replies: Readonly<Record<Protocol, Reply>> = {
  chat: chatReply(),
  messages: messagesReply(),
  responses: responsesReply()
}

/**
 * The JSON value of the structured-output rows: an object with a title and
 * a list of 200 short strings, as its JSON text cut into 200 deltas.
 */
export const objectValue = {
  title: "The quick brown fox",
  words: textChunks.map((word) => word.trim())
}

/** `objectValue`'s JSON text in `chunkCount` deltas (cut anywhere, strings and escapes included). */
export const objectChunks: ReadonlyArray<string> = (() => {
  const text = JSON.stringify(objectValue)
  const size = Math.ceil(text.length / chunkCount)
  return Array.from({ length: Math.ceil(text.length / size) }, (_, i) => text.slice(i * size, (i + 1) * size))
})()

/** The replies whose text is `objectValue`'s JSON (Chat Completions and Anthropic Messages). */
export const objectReplies: Readonly<Record<"chat" | "messages", Reply>> = {
  chat: chatReply(objectChunks),
  messages: messagesReply(objectChunks)
}

/** The tool the one-tool-step rows offer, and the arguments its call carries. */
export const benchTool = { name: "lookup", arguments: { query: "fox" } } as const

/**
 * A Chat Completions stream that calls `benchTool` once (a role chunk, the
 * call's id and name, its arguments, `tool_calls` as the finish reason): the
 * first step of the one-tool-step rows; the second step is the plain reply.
 */
export const toolCallReply: Reply = (() => {
  const id = "chatcmpl-bench-tool"
  const chunk = (delta: object, finishReason: string | null) => chatChunk(id, delta, finishReason)
  const call = (fn: object, head: boolean) => ({
    tool_calls: [{ index: 0, ...(head ? { id: "call_bench", type: "function" } : {}), function: fn }]
  })
  const events = [
    sse(chunk({ role: "assistant", content: null, refusal: null }, null)),
    sse(chunk(call({ name: benchTool.name, arguments: "" }, true), null)),
    sse(chunk(call({ arguments: JSON.stringify(benchTool.arguments) }, false), null)),
    sse(chunk({}, "tool_calls")),
    sse("[DONE]")
  ]
  return { json: "{}", events, firstTextEvent: events.length }
})()

/** The conversation every client sends: a system prompt and one user message. */
export const prompt = {
  system: "You are a concise assistant.",
  user: "Tell me about the quick brown fox."
} as const

/**
 * A fake LLM provider on loopback, for testing an application's use of
 * effect-llm over real HTTP, the way the library's own provider tests do.
 *
 * It speaks the real wire formats byte for byte (OpenAI Chat Completions and
 * Anthropic Messages, streamed or not, WIRE.md §2 and §3), replays recorded
 * bytes, injects faults (error statuses with Retry-After, resets, stalls,
 * keep-alives, malformed or cut-off streams, in-band errors, hangs) and
 * records every request and whether the client closed it early.
 *
 * It is plain `node:http`, independent of the code under test.
 *
 * With `start({ slots })` it simulates llama-server's slot cache: chat
 * replies report the prompt prefix a slot reused (`cached_tokens`,
 * `timings.cache_n`), per `id_slot`.
 *
 * For load and soak runs it also answers from a request's content (see
 * {@link FakeProvider.respond}), floods bodies without buffering them
 * (`flood`), holds replies until a gate opens (`gated`), keeps counters that
 * survive {@link FakeProvider.clearRequests}, and takes a larger listen backlog.
 *
 * Routes:
 * - `POST …/chat/completions` → protocol `"chat"`, answered by the next script.
 * - `POST …/messages` → protocol `"messages"`, answered by the next script.
 * - `GET /health` → 200 `{"status":"ok"}` (see {@link FakeProvider.setHealth}).
 * - `GET …/models` → a one-model OpenAI-style list.
 * - a `GET` path given to {@link FakeProvider.setRoute} → what was set (a server's `/props`, `/api/version`, …).
 * - anything else → 404 with an OpenAI-style error body.
 *
 * @example
 * const server = await FakeProvider.start()
 * server.enqueue({ kind: "reply", text: "Hello!" }, { kind: "status", status: 429, headers: { "retry-after": "1" } })
 * // point a client at `${server.url}/v1` …
 * await server.close()
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as http from "node:http"
import type { AddressInfo, Socket } from "node:net"
import { SlotCache } from "./slotCache.js"

export {
  /**
   * The prompt a chat request renders to in the slot simulation, one token a character.
   *
   * @since 0.1.0
   */
  slotPrompt
} from "./slotCache.js"

// ---------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------

/**
 * A tool call in a scripted reply. `arguments` may be a JSON string (sent as is) or an object (JSON-encoded).
 *
 * @since 0.1.0
 */
export interface FakeToolCall {
  /** Default: `call_<i>` (chat) or `toolu_<i>` (messages), `i` the call's position. */
  readonly id?: string
  readonly name: string
  readonly arguments: string | Readonly<Record<string, unknown>>
}

/**
 * Token counts in a scripted reply, rendered as each protocol's usage object.
 *
 * @since 0.1.0
 */
export interface FakeUsage {
  readonly inputTokens: number
  readonly outputTokens: number
  /** chat: `prompt_tokens_details.cached_tokens`; messages: `cache_read_input_tokens`. */
  readonly cacheReadTokens?: number
  /** messages only: `cache_creation_input_tokens`. */
  readonly cacheWriteTokens?: number
  /** chat only: `completion_tokens_details.reasoning_tokens`. */
  readonly reasoningTokens?: number
  /** chat only: OpenRouter's `cost`, in credits (US dollars). */
  readonly cost?: number
  /** chat only: OpenRouter's `cost_details.upstream_inference_cost`, sent with `is_byok: true` (a request on the user's own provider key). */
  readonly upstreamCost?: number
}

/**
 * An in-band error sent inside a 200 stream (chat: a top-level `error` chunk; messages: `event: error`).
 *
 * @since 0.1.0
 */
export interface FakeInBandError {
  /** Number of data events written before the error. */
  readonly afterEvents: number
  readonly type: string
  readonly message: string
  /** chat only: `error.code` (default null). */
  readonly code?: string | number
}

/**
 * SSE comment lines sent while a reply streams (OpenRouter's `: OPENROUTER PROCESSING`).
 *
 * @since 0.1.0
 */
export interface FakeKeepAlive {
  /** The comment text without the leading `: ` (default `OPENROUTER PROCESSING`). */
  readonly comment?: string
  /** Interval in milliseconds; one comment is also sent right after the headers. */
  readonly everyMs: number
}

/**
 * A provider-neutral reply, rendered in whichever protocol the client spoke
 * (chat completions or messages), streamed or not depending on the request
 * body's `stream` flag, with optional quirks and faults.
 *
 * Fault positions count SSE data events in the order they are sent: for chat
 * the role chunk is event 0 and `[DONE]` the last; for messages
 * `message_start` is event 0 and the `ping` after it event 1. A position past
 * the last event means "after all events".
 *
 * @since 0.1.0
 */
export interface Reply {
  readonly kind: "reply"
  readonly text?: string
  readonly reasoning?: string
  /**
   * Chat only: a structured output's refusal, as OpenAI sends it
   * (`message.refusal`, streamed as `delta.refusal` pieces), with `content`
   * null. Give `finishReason` as the server would (OpenAI: `stop`).
   */
  readonly refusal?: string
  readonly toolCalls?: ReadonlyArray<FakeToolCall>
  /**
   * Neutral finish reason, rendered per protocol: stop → `stop`/`end_turn`,
   * length → `length`/`max_tokens`, tool_calls → `tool_calls`/`tool_use`,
   * content_filter → `content_filter`/`refusal`. Default: `tool_calls` when
   * `toolCalls` is non-empty, else `stop`.
   */
  readonly finishReason?: "stop" | "length" | "tool_calls" | "content_filter"
  /** A raw wire finish/stop reason, sent as is instead of `finishReason`. */
  readonly wireFinishReason?: string
  /** Default `{ inputTokens: 10, outputTokens: <number of text chunks> }`. */
  readonly usage?: FakeUsage
  /** Default: the request body's `model` (else `fake-model`). */
  readonly model?: string
  /** Default: `chatcmpl-fake<n>` / `msg_fake<n>`. */
  readonly id?: string
  /** Extra response headers; they override the defaults (e.g. `x-request-id`). */
  readonly headers?: Readonly<Record<string, string>>
  /** Characters per text or reasoning delta when streaming (default 4). */
  readonly chunkSize?: number
  /** Characters per tool-argument fragment when streaming (default 8). */
  readonly argumentsChunkSize?: number
  /** Milliseconds between SSE events (default 0: the whole body in one write). */
  readonly delayMs?: number
  /**
   * Milliseconds before the first SSE event, the headers (and any leading
   * comments and keep-alives) already sent: a server still processing the
   * prompt. A whole (non-streamed) reply waits as long before its response.
   * Default 0.
   */
  readonly firstEventDelayMs?: number
  /** Chat only: the delta/message field reasoning goes in (default `reasoning_content`). */
  readonly reasoningField?: "reasoning" | "reasoning_content"
  /** Send SSE comment lines while the reply streams (until the response ends, stalls included). */
  readonly keepAlive?: FakeKeepAlive
  /** Send N `: OPENROUTER PROCESSING` comments before the first event (shorthand kept for older tests). */
  readonly leadingComments?: number
  /** Chat quirk (Ollama, Mistral): tool-call fragments without `index`. */
  readonly omitToolCallIndex?: boolean
  /** Chat quirk (some llama-server builds): `function.arguments` as a JSON object, each call in one delta; also non-streaming. */
  readonly argumentsAsObject?: boolean
  /** Chat quirk (Ollama): each tool call complete (id, name, whole arguments string) in one delta. */
  readonly wholeToolCalls?: boolean
  /** Streaming fault: destroy the socket after N data events. */
  readonly resetAfterEvents?: number
  /** Streaming fault: stop writing after N data events and keep the connection open until the client or `close()` ends it. */
  readonly stallAfterEvents?: number
  /** While stalled, send a keep-alive every N ms (chat: `: keep-alive`; messages: `event: ping`). */
  readonly stallKeepAliveMs?: number
  /** Streaming fault: end the body without finish reason and terminator (chat: no finish chunk, usage chunk or `[DONE]`; messages: no `message_delta` or `message_stop`). */
  readonly omitTerminator?: boolean
  /** Streaming fault: after N data events write `data: {not json` and end. */
  readonly malformedAfterEvents?: number
  /** Streaming fault: after N data events send the protocol's in-band error and end. */
  readonly inBandError?: FakeInBandError
}

/**
 * An HTTP error response. `body` defaults to the protocol's error JSON built
 * from `type`/`message`/`code` (chat: `{error:{message,type,param:null,code}}`;
 * messages: `{type:"error",error:{type,message},request_id:"req_fake"}`). A
 * string body is sent as is (as `application/json` when it parses as JSON,
 * else `text/html`).
 *
 * @since 0.1.0
 */
export interface StatusReply {
  readonly kind: "status"
  readonly status: number
  readonly body?: string | object
  readonly headers?: Readonly<Record<string, string>>
  readonly type?: string
  readonly message?: string
  readonly code?: string
}

/**
 * Bytes exactly as given: status (default 200), headers (default `text/event-stream`), then `chunks` one write each, `delayMs` apart.
 *
 * @since 0.1.0
 */
export interface RawReply {
  readonly kind: "raw"
  readonly status?: number
  readonly headers?: Readonly<Record<string, string>>
  readonly chunks: ReadonlyArray<string | Uint8Array>
  readonly delayMs?: number
  /** Default true; false keeps the connection open after the last chunk. */
  readonly end?: boolean
}

/**
 * Accept the request and never answer (until the client or `close()` ends the connection).
 *
 * @since 0.1.0
 */
export interface HangReply {
  readonly kind: "hang"
}

/**
 * Send the status line and headers (default 200 `text/event-stream`), then nothing.
 *
 * @since 0.1.0
 */
export interface HeadersOnlyReply {
  readonly kind: "headersOnly"
  readonly status?: number
  readonly headers?: Readonly<Record<string, string>>
}

/**
 * Destroy the socket at once without answering (the client sees a connection error).
 *
 * @since 0.1.0
 */
export interface ResetReply {
  readonly kind: "reset"
}

/**
 * A large body produced on the fly: status (default 200) and headers (default
 * `text/event-stream`), `prefix`, then `chunk` written again and again (waiting
 * for the socket to drain, so the server's own memory stays flat) until
 * `bytes` bytes of chunks were sent, then `suffix` and the end. Without
 * `bytes` it floods until the client closes the connection.
 *
 * @since 0.1.0
 */
export interface FloodReply {
  readonly kind: "flood"
  readonly status?: number
  readonly headers?: Readonly<Record<string, string>>
  readonly prefix?: string | Uint8Array
  readonly chunk: string | Uint8Array
  readonly bytes?: number
  readonly suffix?: string | Uint8Array
}

/**
 * Holds the request (headers not yet sent) until `until` settles, then answers
 * it with `then`: load tests gate their replies so that every request is
 * open at the same time.
 *
 * @since 0.1.0
 */
export interface GatedReply {
  readonly kind: "gated"
  readonly until: Promise<unknown>
  readonly then: Script
}

/**
 * What the server does with one chat/messages request.
 *
 * @since 0.1.0
 */
export type Script =
  | Reply
  | StatusReply
  | RawReply
  | HangReply
  | HeadersOnlyReply
  | ResetReply
  | FloodReply
  | GatedReply

/**
 * Picks the script for a request from its content (e.g. echoing an id found in
 * the last user message), so concurrent callers each get their own answer.
 * Returning undefined falls through to the default script.
 *
 * @since 0.1.0
 */
export type Responder = (request: RecordedRequest) => Script | undefined

/**
 * Counters since start (or the last `reset()`), kept even when recorded requests are cleared.
 *
 * @since 0.1.0
 */
export interface FakeProviderStats {
  /** Chat/messages and other requests received. */
  readonly received: number
  /** Responses written completely. */
  readonly finished: number
  /** Requests the client closed before their response finished. */
  readonly closedByClient: number
  /** Requests whose connection is still open and whose response is not finished: in flight right now. */
  readonly active: number
  /** The most requests in flight at once. */
  readonly peakActive: number
  /** TCP connections accepted. */
  readonly connections: number
}

/**
 * A request the server received (every route, GETs included).
 *
 * @since 0.1.0
 */
export interface RecordedRequest {
  readonly method: string
  /** The path without the query string. */
  readonly path: string
  readonly headers: Readonly<Record<string, string | Array<string> | undefined>>
  /** The parsed JSON body, or undefined when empty or not JSON. */
  readonly body: unknown
  readonly rawBody: string
  readonly protocol: "chat" | "messages" | "other"
  /** The `req_<n>` id sent back in `x-request-id` (chat, other) or `request-id` (messages) unless a script overrides it. */
  readonly requestId: string
  /** `Date.now()` when the request arrived. */
  readonly receivedAt: number
  /** The client closed the connection before the response finished (server-side resets and `close()` do not count). */
  closedByClient: boolean
  /** The response was written completely. */
  finished: boolean
}

/**
 * A running fake provider.
 *
 * @since 0.1.0
 */
export interface FakeProvider {
  /** `http://127.0.0.1:PORT`: no trailing slash, no `/v1`. */
  readonly url: string
  readonly port: number
  /** Queues scripts; each chat/messages request takes the next one, or the default when the queue is empty. */
  enqueue(...scripts: ReadonlyArray<Script>): void
  /** The script used when the queue is empty (initially `{ kind: "reply", text: "ok" }`). */
  setDefault(script: Script): void
  /** What `GET /health` answers (initially 200 `{"status":"ok"}`). */
  setHealth(status: number, body: object): void
  /**
   * What `GET path` answers (exact path, no query): a JSON body, or text sent
   * as `text/plain`; it takes precedence over the built-in routes. Undefined
   * removes it.
   */
  setRoute(path: string, answer: { readonly status: number; readonly body: object | string } | undefined): void
  /** Every request received since start or the last `reset()`, in arrival order. */
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Resolves once `n` (default 1) requests have been closed by the client; rejects after `timeoutMs` (default 5000). */
  waitForClientClose(n?: number, timeoutMs?: number): Promise<void>
  /** Resolves once `n` requests have arrived; rejects after `timeoutMs` (default 5000). */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>
  /** Sockets open right now. */
  readonly openConnections: number
  /** Answers requests from their content when the queue is empty (before the default script); undefined removes it. */
  respond(responder: Responder | undefined): void
  /** Drops the recorded requests (keeps the counters and `stats`), so long runs do not accumulate them. */
  clearRequests(): void
  /** Counters of requests and connections. */
  readonly stats: FakeProviderStats
  /** Clears the queue, the recorded requests, the request counter, the responder, the routes, the stats counters and the simulated slot caches, and restores the default script and health. */
  reset(): void
  /** Stops the server and destroys every socket. */
  close(): Promise<void>
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

type Protocol = RecordedRequest["protocol"]

/** Fixed `created` timestamp, so rendered bodies are deterministic. */
const CREATED = 1_700_000_000
const SIGNATURE = "c2lnbmF0dXJl"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const pieces = (text: string, size: number): Array<string> => {
  const out: Array<string> = []
  const step = Math.max(1, size)
  for (let i = 0; i < text.length; i += step) out.push(text.slice(i, i + step))
  return out
}

const argumentsText = (call: FakeToolCall): string =>
  typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments)

const argumentsObject = (call: FakeToolCall): unknown => {
  if (typeof call.arguments !== "string") return call.arguments
  if (call.arguments.trim() === "") return {}
  try {
    return JSON.parse(call.arguments)
  } catch {
    throw new Error(`FakeProvider: tool call ${call.name} has arguments that are not JSON: ${call.arguments}`)
  }
}

const neutralReason = (reply: Reply): string =>
  reply.finishReason ?? ((reply.toolCalls?.length ?? 0) > 0 ? "tool_calls" : "stop")

const chatReason = (reply: Reply): string => reply.wireFinishReason ?? neutralReason(reply)

const messagesReason = (reply: Reply): string => {
  if (reply.wireFinishReason !== undefined) return reply.wireFinishReason
  switch (neutralReason(reply)) {
    case "length":
      return "max_tokens"
    case "tool_calls":
      return "tool_use"
    case "content_filter":
      return "refusal"
    default:
      return "end_turn"
  }
}

const usageOf = (reply: Reply): FakeUsage =>
  reply.usage ?? { inputTokens: 10, outputTokens: pieces(reply.text ?? "", reply.chunkSize ?? 4).length }

/** An SSE event as the wire carries it. */
interface WireEvent {
  readonly event?: string
  readonly data: string
}

const formatEvent = (event: WireEvent): string =>
  `${event.event === undefined ? "" : `event: ${event.event}\n`}data: ${event.data}\n\n`

const chatUsage = (usage: FakeUsage) => ({
  prompt_tokens: usage.inputTokens,
  completion_tokens: usage.outputTokens,
  total_tokens: usage.inputTokens + usage.outputTokens,
  prompt_tokens_details: { cached_tokens: usage.cacheReadTokens ?? 0 },
  completion_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0 },
  ...(usage.cost === undefined ? {} : { cost: usage.cost }),
  ...(usage.upstreamCost === undefined
    ? {}
    : { is_byok: true, cost_details: { upstream_inference_cost: usage.upstreamCost } })
})

/**
 * Renders a reply as Chat Completions chunks (WIRE.md §3.2); `extra` fields
 * (llama-server's `timings`) go on the last chunk before `[DONE]`, as llama-server puts them.
 */
const chatEvents = (
  reply: Reply,
  model: string,
  id: string,
  includeUsage: boolean,
  extra: Readonly<Record<string, unknown>> = {}
): Array<WireEvent> => {
  // OpenAI sends `usage: null` on every chunk only when usage was asked for
  const usageNull = includeUsage ? { usage: null } : {}
  const chunk = (delta: object, finish: string | null = null) => ({
    data: JSON.stringify({
      id,
      object: "chat.completion.chunk",
      created: CREATED,
      model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...usageNull
    })
  })
  const events: Array<WireEvent> = [chunk({ role: "assistant", content: "" })]
  const size = reply.chunkSize ?? 4
  const reasoningField = reply.reasoningField ?? "reasoning_content"
  for (const piece of pieces(reply.reasoning ?? "", size)) events.push(chunk({ [reasoningField]: piece }))
  for (const piece of pieces(reply.text ?? "", size)) events.push(chunk({ content: piece }))
  for (const piece of pieces(reply.refusal ?? "", size)) events.push(chunk({ refusal: piece }))
  ;(reply.toolCalls ?? []).forEach((call, index) => {
    const at = reply.omitToolCallIndex ? {} : { index }
    const id = call.id ?? `call_${index}`
    if (reply.argumentsAsObject) {
      const fn = { name: call.name, arguments: argumentsObject(call) }
      events.push(chunk({ tool_calls: [{ ...at, id, type: "function", function: fn }] }))
      return
    }
    if (reply.wholeToolCalls) {
      const fn = { name: call.name, arguments: argumentsText(call) }
      events.push(chunk({ tool_calls: [{ ...at, id, type: "function", function: fn }] }))
      return
    }
    events.push(chunk({ tool_calls: [{ ...at, id, type: "function", function: { name: call.name, arguments: "" } }] }))
    for (const piece of pieces(argumentsText(call), reply.argumentsChunkSize ?? 8)) {
      events.push(chunk({ tool_calls: [{ ...at, function: { arguments: piece } }] }))
    }
  })
  if (reply.omitTerminator) return events
  const finish = chunk({}, chatReason(reply))
  if (includeUsage) {
    events.push(finish)
    events.push({
      data: JSON.stringify({
        id,
        object: "chat.completion.chunk",
        created: CREATED,
        model,
        choices: [],
        usage: chatUsage(usageOf(reply)),
        ...extra
      })
    })
  } else {
    events.push(
      Object.keys(extra).length === 0
        ? finish
        : { data: JSON.stringify({ ...JSON.parse(finish.data) as object, ...extra }) }
    )
  }
  events.push({ data: "[DONE]" })
  return events
}

/** Renders a reply as a Chat Completions JSON body (WIRE.md §2.1), with `extra` top-level fields (llama-server's `timings`). */
const chatBody = (reply: Reply, model: string, id: string, extra: Readonly<Record<string, unknown>> = {}) => {
  const toolCalls = (reply.toolCalls ?? []).map((call, index) => ({
    id: call.id ?? `call_${index}`,
    type: "function",
    function: { name: call.name, arguments: reply.argumentsAsObject ? argumentsObject(call) : argumentsText(call) }
  }))
  return {
    id,
    object: "chat.completion",
    created: CREATED,
    model,
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: reply.text ?? (toolCalls.length > 0 || reply.refusal !== undefined ? null : ""),
        refusal: reply.refusal ?? null,
        ...(reply.reasoning === undefined ? {} : { [reply.reasoningField ?? "reasoning_content"]: reply.reasoning }),
        ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {})
      },
      logprobs: null,
      finish_reason: chatReason(reply)
    }],
    usage: chatUsage(usageOf(reply)),
    ...extra
  }
}

const messagesUsage = (usage: FakeUsage) => ({
  input_tokens: usage.inputTokens,
  cache_creation_input_tokens: usage.cacheWriteTokens ?? 0,
  cache_read_input_tokens: usage.cacheReadTokens ?? 0
})

/** Anthropic's ping bytes (note the space, as the real API sends it). */
const PING_DATA = "{\"type\": \"ping\"}"

/** Renders a reply as Anthropic Messages events (WIRE.md §3.3). */
const messagesEvents = (reply: Reply, model: string, id: string): Array<WireEvent> => {
  const usage = usageOf(reply)
  const events: Array<WireEvent> = []
  const push = (data: { readonly type: string } & Record<string, unknown>) =>
    events.push({ event: data.type, data: JSON.stringify(data) })
  push({
    type: "message_start",
    message: {
      id,
      type: "message",
      role: "assistant",
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { ...messagesUsage(usage), output_tokens: 1 }
    }
  })
  events.push({ event: "ping", data: PING_DATA })
  const size = reply.chunkSize ?? 4
  let index = 0
  if (reply.reasoning !== undefined) {
    push({ type: "content_block_start", index, content_block: { type: "thinking", thinking: "", signature: "" } })
    for (const piece of pieces(reply.reasoning, size)) {
      push({ type: "content_block_delta", index, delta: { type: "thinking_delta", thinking: piece } })
    }
    push({ type: "content_block_delta", index, delta: { type: "signature_delta", signature: SIGNATURE } })
    push({ type: "content_block_stop", index })
    index++
  }
  if (reply.text !== undefined && reply.text !== "") {
    push({ type: "content_block_start", index, content_block: { type: "text", text: "" } })
    for (const piece of pieces(reply.text, size)) {
      push({ type: "content_block_delta", index, delta: { type: "text_delta", text: piece } })
    }
    push({ type: "content_block_stop", index })
    index++
  }
  for (const [n, call] of (reply.toolCalls ?? []).entries()) {
    push({
      type: "content_block_start",
      index,
      content_block: { type: "tool_use", id: call.id ?? `toolu_${n}`, name: call.name, input: {} }
    })
    for (const piece of pieces(argumentsText(call), reply.argumentsChunkSize ?? 8)) {
      push({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: piece } })
    }
    push({ type: "content_block_stop", index })
    index++
  }
  if (reply.omitTerminator) return events
  push({
    type: "message_delta",
    delta: { stop_reason: messagesReason(reply), stop_sequence: null },
    usage: { output_tokens: usage.outputTokens }
  })
  push({ type: "message_stop" })
  return events
}

/** Renders a reply as an Anthropic Messages JSON body (WIRE.md §2.2). */
const messagesBody = (reply: Reply, model: string, id: string) => {
  const content: Array<object> = []
  if (reply.reasoning !== undefined) content.push({ type: "thinking", thinking: reply.reasoning, signature: SIGNATURE })
  if (reply.text !== undefined && reply.text !== "") content.push({ type: "text", text: reply.text })
  for (const [n, call] of (reply.toolCalls ?? []).entries()) {
    content.push({ type: "tool_use", id: call.id ?? `toolu_${n}`, name: call.name, input: argumentsObject(call) })
  }
  const usage = usageOf(reply)
  return {
    id,
    type: "message",
    role: "assistant",
    model,
    content,
    stop_reason: messagesReason(reply),
    stop_sequence: null,
    usage: { ...messagesUsage(usage), output_tokens: usage.outputTokens }
  }
}

const errorBody = (protocol: Protocol, script: StatusReply): object =>
  protocol === "messages"
    ? {
      type: "error",
      error: { type: script.type ?? "api_error", message: script.message ?? `HTTP ${script.status}` },
      request_id: "req_fake"
    }
    : {
      error: {
        message: script.message ?? `HTTP ${script.status}`,
        type: script.type ?? "error",
        param: null,
        code: script.code ?? null
      }
    }

const inBandErrorEvent = (protocol: Protocol, error: FakeInBandError): WireEvent =>
  protocol === "messages"
    ? { event: "error", data: JSON.stringify({ type: "error", error: { type: error.type, message: error.message } }) }
    : { data: JSON.stringify({ error: { message: error.message, type: error.type, code: error.code ?? null } }) }

const stallKeepAlive = (protocol: Protocol): string =>
  protocol === "messages" ? formatEvent({ event: "ping", data: PING_DATA }) : ": keep-alive\n\n"

const isJson = (text: string): boolean => {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/**
 * A chat reply as llama-server with a slot cache answers it: the prompt and
 * cached counts the slot reports (the script's output count kept), its
 * `timings`, and no output at all for `max_tokens: 0` / `n_predict: 0`
 * ("the prompt is evaluated into the cache").
 */
const fromSlot = (
  slots: SlotCache,
  body: unknown,
  script: Reply
): { readonly reply: Reply; readonly extra: Readonly<Record<string, unknown>> } => {
  const request = (typeof body === "object" && body !== null ? body : {}) as {
    readonly max_tokens?: unknown
    readonly n_predict?: unknown
  }
  const report = slots.evaluate(body)
  const { reasoning: _reasoning, toolCalls: _toolCalls, ...rest } = script
  const answered: Reply = request.max_tokens === 0 || request.n_predict === 0
    ? { ...rest, text: "", finishReason: "length" }
    : script
  const scripted = usageOf(answered)
  const usage: FakeUsage = {
    ...scripted,
    inputTokens: report.promptTokens,
    cacheReadTokens: report.cachedTokens
  }
  return { reply: { ...answered, usage }, extra: { timings: report.timings(usage.outputTokens) } }
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/** Per-request state shared between the request handler and the script runner. */
interface Exchange {
  readonly request: RecordedRequest
  readonly res: http.ServerResponse
  /** Set before the server itself destroys the socket, so it is not taken for a client close. */
  serverAborted: boolean
}

/**
 * Starts a fake provider on loopback (`127.0.0.1`, a free port unless `port` is given).
 *
 * @since 0.1.0
 */
export const start = async (
  options: {
    readonly port?: number
    readonly host?: string
    /** The listen backlog (default Node's 511); raise it to accept a thousand connections at once. */
    readonly backlog?: number
    /**
     * Simulate llama-server's slot cache with this many slots (its
     * `--parallel`): chat replies then report the prompt and the prefix a
     * slot reused (`prompt_tokens`, `cached_tokens`; a scripted `usage`
     * keeps only its output count), llama-server's `timings`, and no output
     * for `max_tokens: 0` / `n_predict: 0` (see {@link SlotCache}).
     */
    readonly slots?: number
  } = {}
): Promise<FakeProvider> => {
  const slotCache = options.slots === undefined ? undefined : new SlotCache(options.slots)
  const initialScript: Script = { kind: "reply", text: "ok" }
  const initialHealth = { status: 200, body: { status: "ok" } as object }
  let fallback: Script = initialScript
  let health = initialHealth
  const routes = new Map<string, { readonly status: number; readonly body: object | string }>()
  const queue: Array<Script> = []
  const requests: Array<RecordedRequest> = []
  const sockets = new Set<Socket>()
  const waiters = new Set<() => void>()
  let counter = 0
  let closing = false
  let responder: Responder | undefined
  const stats = { received: 0, finished: 0, closedByClient: 0, active: 0, peakActive: 0, connections: 0 }

  const notify = () => {
    for (const waiter of [...waiters]) waiter()
  }

  const waitFor = (condition: () => boolean, what: string, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      if (condition()) return resolve()
      const check = () => {
        if (!condition()) return
        clearTimeout(timer)
        waiters.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`FakeProvider: timed out after ${timeoutMs} ms waiting for ${what}`))
      }, timeoutMs)
      waiters.add(check)
    })

  /** Destroys the exchange's socket from the server side. */
  const abort = (exchange: Exchange, hard: boolean) => {
    exchange.serverAborted = true
    const socket = exchange.res.socket
    if (socket === null) return
    if (hard && typeof socket.resetAndDestroy === "function") socket.resetAndDestroy()
    else socket.destroy()
  }

  /** Writes and resolves once the bytes were handed to the OS (or the response died). */
  const writeFlushed = (res: http.ServerResponse, data: string) =>
    new Promise<void>((resolve) => {
      if (data === "") {
        res.flushHeaders()
        setImmediate(resolve)
        return
      }
      res.write(data, () => resolve())
    })

  const streamReply = async (
    exchange: Exchange,
    script: Reply,
    events: ReadonlyArray<WireEvent>,
    headers: Record<string, string>
  ) => {
    const { request, res } = exchange
    const protocol = request.protocol
    const live = () => !res.destroyed && !res.writableEnded
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      ...headers,
      ...script.headers
    })

    const keepAliveLine = `: ${script.keepAlive?.comment ?? "OPENROUTER PROCESSING"}\n\n`
    const out: Array<string> = []
    for (let i = 0; i < (script.leadingComments ?? 0); i++) out.push(": OPENROUTER PROCESSING\n\n")
    if (script.keepAlive !== undefined) {
      out.push(keepAliveLine)
      const timer = setInterval(() => {
        if (live()) res.write(keepAliveLine)
      }, Math.max(1, script.keepAlive.everyMs))
      res.on("close", () => clearInterval(timer))
    }
    const flush = () => {
      if (out.length > 0 && live()) res.write(out.join(""))
      out.length = 0
    }
    if (script.firstEventDelayMs !== undefined && script.firstEventDelayMs > 0) {
      // the headers, leading comments and keep-alives go out while the "prompt is processed"
      if (out.length > 0) flush()
      else res.flushHeaders()
      await sleep(script.firstEventDelayMs)
    }
    const at = (n: number | undefined) => n === undefined ? undefined : Math.min(Math.max(0, n), events.length)
    const inBandAt = at(script.inBandError?.afterEvents)
    const malformedAt = at(script.malformedAfterEvents)
    const resetAt = at(script.resetAfterEvents)
    const stallAt = at(script.stallAfterEvents)

    for (let i = 0; i <= events.length; i++) {
      if (!live()) return
      if (script.inBandError !== undefined && i === inBandAt) {
        out.push(formatEvent(inBandErrorEvent(protocol, script.inBandError)))
        flush()
        res.end()
        return
      }
      if (i === malformedAt) {
        out.push("data: {not json\n\n")
        flush()
        res.end()
        return
      }
      if (i === resetAt) {
        const data = out.join("")
        out.length = 0
        await writeFlushed(res, data)
        const socket = res.socket
        if (socket !== null && socket.writableLength > 0) {
          await new Promise((resolve) => {
            socket.once("drain", resolve)
            socket.once("close", resolve)
          })
        }
        abort(exchange, false)
        return
      }
      if (i === stallAt) {
        if (out.length > 0) flush()
        else res.flushHeaders()
        if (script.stallKeepAliveMs !== undefined) {
          const every = Math.max(1, script.stallKeepAliveMs)
          while (live()) {
            await sleep(every)
            if (live()) res.write(stallKeepAlive(protocol))
          }
        }
        return
      }
      if (i === events.length) break
      out.push(formatEvent(events[i]!))
      if (script.delayMs !== undefined && script.delayMs > 0) {
        flush()
        await sleep(script.delayMs)
      }
    }
    flush()
    if (live()) res.end()
  }

  const serve = async (exchange: Exchange, script: Script): Promise<void> => {
    const { request, res } = exchange
    const protocol = request.protocol
    const body = (typeof request.body === "object" && request.body !== null ? request.body : {}) as {
      readonly stream?: unknown
      readonly model?: unknown
      readonly stream_options?: { readonly include_usage?: unknown } | null
    }
    const idHeader: Record<string, string> = protocol === "messages"
      ? { "request-id": request.requestId }
      : { "x-request-id": request.requestId }
    const live = () => !res.destroyed && !res.writableEnded
    switch (script.kind) {
      case "gated":
        await script.until.catch(() => undefined)
        if (live()) await serve(exchange, script.then)
        return
      case "reset":
        abort(exchange, true)
        return
      case "hang":
        return
      case "headersOnly":
        res.writeHead(script.status ?? 200, { "content-type": "text/event-stream", ...idHeader, ...script.headers })
        res.flushHeaders()
        return
      case "status": {
        const payload = script.body === undefined
          ? JSON.stringify(errorBody(protocol, script))
          : typeof script.body === "string"
          ? script.body
          : JSON.stringify(script.body)
        const json = typeof script.body !== "string" || isJson(script.body)
        res.writeHead(script.status, {
          "content-type": json ? "application/json" : "text/html",
          ...idHeader,
          ...script.headers
        })
        res.end(payload)
        return
      }
      case "flood": {
        res.writeHead(script.status ?? 200, { "content-type": "text/event-stream", ...idHeader, ...script.headers })
        const write = (data: string | Uint8Array) =>
          new Promise<void>((resolve) => {
            if (!live()) return resolve()
            if (res.write(data)) return resolve()
            const done = () => {
              res.off("drain", done)
              res.off("close", done)
              resolve()
            }
            res.once("drain", done)
            res.once("close", done)
          })
        if (script.prefix !== undefined) await write(script.prefix)
        const size = typeof script.chunk === "string" ? Buffer.byteLength(script.chunk) : script.chunk.length
        for (let sent = 0; live() && (script.bytes === undefined || sent < script.bytes); sent += size) {
          await write(script.chunk)
        }
        if (script.suffix !== undefined) await write(script.suffix)
        if (live()) res.end()
        return
      }
      case "raw": {
        res.writeHead(script.status ?? 200, { "content-type": "text/event-stream", ...idHeader, ...script.headers })
        res.flushHeaders()
        for (const chunk of script.chunks) {
          if (!live()) return
          res.write(chunk)
          if (script.delayMs !== undefined && script.delayMs > 0) await sleep(script.delayMs)
        }
        if (script.end !== false && live()) res.end()
        return
      }
      case "reply": {
        const model = script.model ?? (typeof body.model === "string" ? body.model : "fake-model")
        const n = request.requestId.slice("req_".length)
        const id = script.id ?? (protocol === "messages" ? `msg_fake${n}` : `chatcmpl-fake${n}`)
        const { extra, reply } = protocol === "chat" && slotCache !== undefined
          ? fromSlot(slotCache, request.body, script)
          : { extra: {}, reply: script }
        if (body.stream !== true) {
          if (script.firstEventDelayMs !== undefined && script.firstEventDelayMs > 0) {
            await sleep(script.firstEventDelayMs)
            if (!live()) return
          }
          const payload = JSON.stringify(
            protocol === "messages" ? messagesBody(reply, model, id) : chatBody(reply, model, id, extra)
          )
          res.writeHead(200, { "content-type": "application/json", ...idHeader, ...script.headers })
          res.end(payload)
          return
        }
        const events = protocol === "messages"
          ? messagesEvents(reply, model, id)
          : chatEvents(reply, model, id, body.stream_options?.include_usage === true, extra)
        await streamReply(exchange, reply, events, idHeader)
        return
      }
    }
  }

  const route = (exchange: Exchange) => {
    const { request, res } = exchange
    const json = (status: number, payload: object) => {
      res.writeHead(status, { "content-type": "application/json", "x-request-id": request.requestId })
      res.end(JSON.stringify(payload))
    }
    if (request.protocol !== "other") {
      const script = queue.shift() ?? responder?.(request) ?? fallback
      serve(exchange, script).catch((error: unknown) => {
        // a script the renderer cannot render (e.g. non-JSON tool arguments): make it loud
        const message = error instanceof Error ? error.message : String(error)
        // eslint-disable-next-line no-console -- the fake server has no other way to make a script error loud
        console.error(message)
        if (!res.headersSent) json(500, { error: { message, type: "fake_provider_error", param: null, code: null } })
        else abort(exchange, false)
      })
      return
    }
    const routed = request.method === "GET" ? routes.get(request.path) : undefined
    if (routed !== undefined) {
      if (typeof routed.body !== "string") return json(routed.status, routed.body)
      res.writeHead(routed.status, { "content-type": "text/plain", "x-request-id": request.requestId })
      res.end(routed.body)
      return
    }
    if (request.method === "GET" && request.path === "/health") json(health.status, health.body)
    else if (request.method === "GET" && request.path.endsWith("/models")) {
      json(200, { object: "list", data: [{ id: "fake-model", object: "model", owned_by: "fake" }] })
    } else {
      json(404, {
        error: {
          message: `Invalid URL (${request.method} ${request.path})`,
          type: "invalid_request_error",
          param: null,
          code: null
        }
      })
    }
  }

  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const rawBody = Buffer.concat(chunks).toString("utf8")
      let body: unknown
      try {
        body = rawBody === "" ? undefined : JSON.parse(rawBody)
      } catch {
        body = undefined
      }
      const method = req.method ?? "GET"
      const path = (req.url ?? "/").split("?")[0]!
      const protocol: Protocol = method === "POST" && path.endsWith("/chat/completions")
        ? "chat"
        : method === "POST" && path.endsWith("/messages")
        ? "messages"
        : "other"
      const request: RecordedRequest = {
        method,
        path,
        headers: { ...req.headers },
        body,
        rawBody,
        protocol,
        requestId: `req_${++counter}`,
        receivedAt: Date.now(),
        closedByClient: false,
        finished: false
      }
      const exchange: Exchange = { request, res, serverAborted: false }
      requests.push(request)
      stats.received++
      stats.active++
      stats.peakActive = Math.max(stats.peakActive, stats.active)
      res.on("finish", () => {
        request.finished = true
        stats.finished++
        notify()
      })
      res.on("close", () => {
        if (!request.finished && !exchange.serverAborted && !closing) {
          request.closedByClient = true
          stats.closedByClient++
        }
        stats.active--
        notify()
      })
      notify()
      route(exchange)
    })
  })
  server.on("connection", (socket) => {
    stats.connections++
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", options.backlog ?? 511, () => {
      server.off("error", reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  const host = options.host ?? "127.0.0.1"

  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    enqueue: (...scripts) => {
      for (const script of scripts) queue.push(script)
    },
    setDefault: (script) => {
      fallback = script
    },
    setHealth: (status, body) => {
      health = { status, body }
    },
    setRoute: (path, answer) => {
      if (answer === undefined) routes.delete(path)
      else routes.set(path, answer)
    },
    requests,
    waitForClientClose: (n = 1, timeoutMs = 5_000) =>
      waitFor(
        () => requests.filter((request) => request.closedByClient).length >= n,
        `${n} client close(s)`,
        timeoutMs
      ),
    waitForRequests: (n, timeoutMs = 5_000) => waitFor(() => requests.length >= n, `${n} request(s)`, timeoutMs),
    get openConnections() {
      return sockets.size
    },
    respond: (handler) => {
      responder = handler
    },
    clearRequests: () => {
      requests.length = 0
    },
    get stats() {
      return { ...stats }
    },
    reset: () => {
      slotCache?.clear()
      queue.length = 0
      requests.length = 0
      counter = 0
      responder = undefined
      fallback = initialScript
      health = initialHealth
      routes.clear()
      stats.received = 0
      stats.finished = 0
      stats.closedByClient = 0
      stats.peakActive = stats.active
      stats.connections = 0
    },
    close: () =>
      new Promise<void>((resolve) => {
        closing = true
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}

/**
 * A fake provider as a scoped resource (for `@effect/vitest`): started on acquire, closed on release.
 *
 * @since 0.1.0
 */
export const make: Effect.Effect<FakeProvider, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() => start()),
  (server) => Effect.promise(() => server.close())
)

/**
 * The fake provider in an Effect context.
 *
 * @since 0.1.0
 */
export class FakeProviderServer extends Context.Tag("test/FakeProviderServer")<FakeProviderServer, FakeProvider>() {}

/**
 * One fake provider for a whole suite: `layer(FakeProvider.layer)(...)` in `@effect/vitest`.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<FakeProviderServer> = Layer.scoped(FakeProviderServer, make)

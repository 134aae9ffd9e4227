/**
 * A fake LLM provider on loopback. It speaks the real wire formats (OpenAI
 * Chat Completions and Anthropic Messages, streamed or not), replays recorded
 * bytes, injects faults (statuses with Retry-After, resets, stalls,
 * keep-alives, malformed or cut-off streams, in-band errors, hangs) and
 * records every request and whether the client closed it.
 *
 * It is plain `node:http`, independent of the code under test.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as http from "node:http"
import type { AddressInfo, Socket } from "node:net"

/** A tool call in a scripted reply. */
export interface FakeToolCall {
  readonly id?: string
  readonly name: string
  readonly arguments: string | Record<string, unknown>
}

/** Token counts in a scripted reply. */
export interface FakeUsage {
  readonly inputTokens: number
  readonly outputTokens: number
  readonly cacheReadTokens?: number
  readonly cacheWriteTokens?: number
  readonly reasoningTokens?: number
}

/**
 * A provider-neutral reply, rendered in the protocol the client spoke, streamed
 * or not as the request's `stream` flag says, with optional faults.
 */
export interface Reply {
  readonly kind: "reply"
  readonly text?: string
  readonly reasoning?: string
  readonly toolCalls?: ReadonlyArray<FakeToolCall>
  readonly finishReason?: "stop" | "length" | "tool_calls" | "content_filter"
  /** A raw wire finish/stop reason, overriding `finishReason`. */
  readonly wireFinishReason?: string
  readonly usage?: FakeUsage
  readonly model?: string
  readonly id?: string
  readonly headers?: Readonly<Record<string, string>>
  /** Characters per text or reasoning delta (default 4). */
  readonly chunkSize?: number
  /** Characters per tool-argument fragment (default 8). */
  readonly argumentsChunkSize?: number
  /** Milliseconds between SSE events (default 0: all at once). */
  readonly delayMs?: number
  /** Chat Completions: the field reasoning goes in (default `reasoning_content`). */
  readonly reasoningField?: "reasoning" | "reasoning_content"
  /** SSE comment lines sent before the first event (OpenRouter's `: OPENROUTER PROCESSING`). */
  readonly leadingComments?: number
  /** Chat quirk: tool-call fragments without `index`. */
  readonly omitToolCallIndex?: boolean
  /** Chat quirk: `function.arguments` sent as a JSON object in one fragment. */
  readonly argumentsAsObject?: boolean
  /** Destroy the socket after N data events. */
  readonly resetAfterEvents?: number
  /** Stop writing after N data events and keep the connection open. */
  readonly stallAfterEvents?: number
  /** While stalled, send a keep-alive every N ms (chat: a comment; messages: `event: ping`). */
  readonly stallKeepAliveMs?: number
  /** End the body without the terminator and without a finish reason. */
  readonly omitTerminator?: boolean
  /** After N data events write `data: {not json` and end. */
  readonly malformedAfterEvents?: number
  /** After N data events send the protocol's in-band error and end. */
  readonly inBandError?: {
    readonly afterEvents: number
    readonly type: string
    readonly message: string
    readonly code?: string | number
  }
}

/** An HTTP error response; the body defaults to the protocol's error JSON. */
export interface StatusReply {
  readonly kind: "status"
  readonly status: number
  readonly body?: string | object
  readonly headers?: Readonly<Record<string, string>>
  readonly type?: string
  readonly message?: string
  readonly code?: string
}

/** Bytes exactly as given, chunk by chunk. */
export interface RawReply {
  readonly kind: "raw"
  readonly status?: number
  readonly headers?: Readonly<Record<string, string>>
  readonly chunks: ReadonlyArray<string | Uint8Array>
  readonly delayMs?: number
  /** Default true; false keeps the connection open after the last chunk. */
  readonly end?: boolean
}

/** Accept the request and never answer. */
export interface HangReply {
  readonly kind: "hang"
}

/** Send the status line and headers, then nothing. */
export interface HeadersOnlyReply {
  readonly kind: "headersOnly"
  readonly status?: number
  readonly headers?: Readonly<Record<string, string>>
}

/** Destroy the socket without answering. */
export interface ResetReply {
  readonly kind: "reset"
}

/** What the server does with one request. */
export type Script = Reply | StatusReply | RawReply | HangReply | HeadersOnlyReply | ResetReply

/** A request the server received. */
export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string | Array<string> | undefined>>
  /** The parsed JSON body, or undefined. */
  readonly body: unknown
  readonly rawBody: string
  readonly protocol: "chat" | "messages" | "other"
  /** `Date.now()` when the request arrived. */
  readonly receivedAt: number
  /** The client closed the connection before the response finished. */
  closedByClient: boolean
  /** The response was written completely. */
  finished: boolean
}

/** A running fake provider. */
export interface FakeProvider {
  /** `http://127.0.0.1:PORT`, no trailing slash, no `/v1`. */
  readonly url: string
  readonly port: number
  /** Queues scripts; each chat/messages request takes the next, else the default. */
  enqueue(...scripts: ReadonlyArray<Script>): void
  /** The script used when the queue is empty (initially a reply "ok"). */
  setDefault(script: Script): void
  /** What `GET /health` answers. */
  setHealth(status: number, body: object): void
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Resolves once `n` requests were closed by the client. */
  waitForClientClose(n?: number, timeoutMs?: number): Promise<void>
  /** Resolves once `n` requests have arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>
  /** Sockets open right now. */
  readonly openConnections: number
  /** Clears the queue, the recorded requests and the default. */
  reset(): void
  /** Stops the server and destroys every socket. */
  close(): Promise<void>
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const pieces = (text: string, size: number): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size))
  return out
}

const argumentsText = (call: FakeToolCall): string =>
  typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments)

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
  reply.usage ?? { inputTokens: 10, outputTokens: Math.max(1, pieces(reply.text ?? "", reply.chunkSize ?? 4).length) }

/** An SSE event as the wire carries it. */
interface WireEvent {
  readonly event?: string
  readonly data: string
}

const chatUsage = (usage: FakeUsage) => ({
  prompt_tokens: usage.inputTokens,
  completion_tokens: usage.outputTokens,
  total_tokens: usage.inputTokens + usage.outputTokens,
  prompt_tokens_details: { cached_tokens: usage.cacheReadTokens ?? 0 },
  completion_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0 }
})

/** Renders a reply as Chat Completions chunks (WIRE.md 3.2). */
const chatEvents = (reply: Reply, model: string, id: string, includeUsage: boolean): Array<WireEvent> => {
  const created = 1_700_000_000
  const chunk = (delta: object, finish: string | null = null) =>
    JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null })
  const events: Array<WireEvent> = [{ data: chunk({ role: "assistant", content: "" }) }]
  const size = reply.chunkSize ?? 4
  for (const piece of pieces(reply.reasoning ?? "", size)) {
    events.push({ data: chunk({ [reply.reasoningField ?? "reasoning_content"]: piece }) })
  }
  for (const piece of pieces(reply.text ?? "", size)) events.push({ data: chunk({ content: piece }) })
  ;(reply.toolCalls ?? []).forEach((call, index) => {
    const at = reply.omitToolCallIndex ? {} : { index }
    const id = call.id ?? `call_${index}`
    if (reply.argumentsAsObject) {
      const args = typeof call.arguments === "string" ? JSON.parse(call.arguments || "{}") : call.arguments
      events.push({ data: chunk({ tool_calls: [{ ...at, id, type: "function", function: { name: call.name, arguments: args } }] }) })
      return
    }
    events.push({ data: chunk({ tool_calls: [{ ...at, id, type: "function", function: { name: call.name, arguments: "" } }] }) })
    for (const piece of pieces(argumentsText(call), reply.argumentsChunkSize ?? 8)) {
      events.push({ data: chunk({ tool_calls: [{ ...at, function: { arguments: piece } }] }) })
    }
  })
  if (reply.omitTerminator) return events
  events.push({ data: chunk({}, chatReason(reply)) })
  if (includeUsage) {
    events.push({
      data: JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [], usage: chatUsage(usageOf(reply)) })
    })
  }
  events.push({ data: "[DONE]" })
  return events
}

/** Renders a reply as a Chat Completions JSON body (WIRE.md 2.1). */
const chatBody = (reply: Reply, model: string, id: string) => {
  const toolCalls = (reply.toolCalls ?? []).map((call, index) => ({
    id: call.id ?? `call_${index}`,
    type: "function",
    function: { name: call.name, arguments: argumentsText(call) }
  }))
  return {
    id,
    object: "chat.completion",
    created: 1_700_000_000,
    model,
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: reply.text ?? (toolCalls.length > 0 ? null : ""),
        refusal: null,
        ...(reply.reasoning === undefined ? {} : { [reply.reasoningField ?? "reasoning_content"]: reply.reasoning }),
        ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {})
      },
      logprobs: null,
      finish_reason: chatReason(reply)
    }],
    usage: chatUsage(usageOf(reply))
  }
}

const messagesUsage = (usage: FakeUsage) => ({
  input_tokens: usage.inputTokens,
  cache_creation_input_tokens: usage.cacheWriteTokens ?? 0,
  cache_read_input_tokens: usage.cacheReadTokens ?? 0
})

/** Renders a reply as Anthropic Messages events (WIRE.md 3.3). */
const messagesEvents = (reply: Reply, model: string, id: string): Array<WireEvent> => {
  const usage = usageOf(reply)
  const events: Array<WireEvent> = []
  const push = (data: { type: string } & Record<string, unknown>) => events.push({ event: data.type, data: JSON.stringify(data) })
  push({
    type: "message_start",
    message: { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage: { ...messagesUsage(usage), output_tokens: 1 } }
  })
  push({ type: "ping" })
  const size = reply.chunkSize ?? 4
  let index = 0
  if (reply.reasoning !== undefined) {
    push({ type: "content_block_start", index, content_block: { type: "thinking", thinking: "", signature: "" } })
    for (const piece of pieces(reply.reasoning, size)) {
      push({ type: "content_block_delta", index, delta: { type: "thinking_delta", thinking: piece } })
    }
    push({ type: "content_block_delta", index, delta: { type: "signature_delta", signature: "c2lnbmF0dXJl" } })
    push({ type: "content_block_stop", index })
    index++
  }
  if (reply.text !== undefined && reply.text !== "") {
    push({ type: "content_block_start", index, content_block: { type: "text", text: "" } })
    for (const piece of pieces(reply.text, size)) push({ type: "content_block_delta", index, delta: { type: "text_delta", text: piece } })
    push({ type: "content_block_stop", index })
    index++
  }
  for (const [n, call] of (reply.toolCalls ?? []).entries()) {
    push({ type: "content_block_start", index, content_block: { type: "tool_use", id: call.id ?? `toolu_${n}`, name: call.name, input: {} } })
    for (const piece of pieces(argumentsText(call), reply.argumentsChunkSize ?? 8)) {
      push({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: piece } })
    }
    push({ type: "content_block_stop", index })
    index++
  }
  if (reply.omitTerminator) return events
  push({ type: "message_delta", delta: { stop_reason: messagesReason(reply), stop_sequence: null }, usage: { output_tokens: usage.outputTokens } })
  push({ type: "message_stop" })
  return events
}

/** Renders a reply as an Anthropic Messages JSON body (WIRE.md 2.2). */
const messagesBody = (reply: Reply, model: string, id: string) => {
  const content: Array<object> = []
  if (reply.reasoning !== undefined) content.push({ type: "thinking", thinking: reply.reasoning, signature: "c2lnbmF0dXJl" })
  if (reply.text !== undefined && reply.text !== "") content.push({ type: "text", text: reply.text })
  for (const [n, call] of (reply.toolCalls ?? []).entries()) {
    content.push({ type: "tool_use", id: call.id ?? `toolu_${n}`, name: call.name, input: JSON.parse(argumentsText(call) || "{}") })
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

const errorBody = (protocol: RecordedRequest["protocol"], script: StatusReply): object =>
  protocol === "messages"
    ? { type: "error", error: { type: script.type ?? "api_error", message: script.message ?? `HTTP ${script.status}` }, request_id: "req_fake" }
    : { error: { message: script.message ?? `HTTP ${script.status}`, type: script.type ?? "error", param: null, code: script.code ?? null } }

const inBandErrorEvent = (protocol: RecordedRequest["protocol"], error: NonNullable<Reply["inBandError"]>): WireEvent =>
  protocol === "messages"
    ? { event: "error", data: JSON.stringify({ type: "error", error: { type: error.type, message: error.message } }) }
    : { data: JSON.stringify({ error: { message: error.message, type: error.type, code: error.code ?? null } }) }

const formatEvent = (event: WireEvent): string =>
  `${event.event === undefined ? "" : `event: ${event.event}\n`}data: ${event.data}\n\n`

const keepAlive = (protocol: RecordedRequest["protocol"]): string =>
  protocol === "messages" ? "event: ping\ndata: {\"type\": \"ping\"}\n\n" : ": keep-alive\n\n"

/** Starts a fake provider on loopback. */
export const start = async (options: { readonly port?: number; readonly host?: string } = {}): Promise<FakeProvider> => {
  const defaultScript: Script = { kind: "reply", text: "ok" }
  let fallback: Script = defaultScript
  let health: { status: number; body: object } = { status: 200, body: { status: "ok" } }
  const queue: Array<Script> = []
  const requests: Array<RecordedRequest> = []
  const sockets = new Set<Socket>()
  const waiters = new Set<() => void>()
  const notify = () => {
    for (const waiter of waiters) waiter()
  }
  let counter = 0

  const waitFor = (condition: () => boolean, what: string, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      if (condition()) return resolve()
      const check = () => {
        if (condition()) {
          clearTimeout(timer)
          waiters.delete(check)
          resolve()
        }
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`timed out waiting for ${what}`))
      }, timeoutMs)
      waiters.add(check)
    })

  const serve = async (request: RecordedRequest, res: http.ServerResponse, script: Script) => {
    const protocol = request.protocol
    const body = (request.body ?? {}) as { stream?: boolean; model?: string; stream_options?: { include_usage?: boolean } }
    const n = ++counter
    const idHeader: Record<string, string> = protocol === "messages" ? { "request-id": `req_${n}` } : { "x-request-id": `req_${n}` }
    const live = () => !res.destroyed && !request.closedByClient
    switch (script.kind) {
      case "reset":
        res.socket?.destroy()
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
          : typeof script.body === "string" ? script.body : JSON.stringify(script.body)
        const isJson = script.body === undefined || typeof script.body === "object"
        res.writeHead(script.status, { "content-type": isJson ? "application/json" : "text/html", ...idHeader, ...script.headers })
        res.end(payload)
        return
      }
      case "raw": {
        res.writeHead(script.status ?? 200, { "content-type": "text/event-stream", ...idHeader, ...script.headers })
        for (const chunk of script.chunks) {
          if (!live()) return
          res.write(chunk)
          if (script.delayMs) await sleep(script.delayMs)
        }
        if (script.end !== false) res.end()
        return
      }
      case "reply": {
        const model = script.model ?? body.model ?? "fake-model"
        const id = script.id ?? (protocol === "messages" ? `msg_fake${n}` : `chatcmpl-fake${n}`)
        if (!body.stream) {
          res.writeHead(200, { "content-type": "application/json", ...idHeader, ...script.headers })
          res.end(JSON.stringify(protocol === "messages" ? messagesBody(script, model, id) : chatBody(script, model, id)))
          return
        }
        const events = protocol === "messages"
          ? messagesEvents(script, model, id)
          : chatEvents(script, model, id, body.stream_options?.include_usage === true)
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...idHeader, ...script.headers })
        for (let i = 0; i < (script.leadingComments ?? 0); i++) res.write(": OPENROUTER PROCESSING\n\n")
        // data events counted for faults: everything after the bookkeeping first event
        const out: Array<string> = []
        const flush = () => {
          if (out.length > 0 && live()) res.write(out.join(""))
          out.length = 0
        }
        for (let i = 0; i <= events.length; i++) {
          if (!live()) return
          if (script.inBandError !== undefined && i === script.inBandError.afterEvents) {
            out.push(formatEvent(inBandErrorEvent(protocol, script.inBandError)))
            flush()
            res.end()
            return
          }
          if (script.malformedAfterEvents !== undefined && i === script.malformedAfterEvents) {
            out.push("data: {not json\n\n")
            flush()
            res.end()
            return
          }
          if (script.resetAfterEvents !== undefined && i === script.resetAfterEvents) {
            flush()
            await sleep(5)
            res.socket?.destroy()
            return
          }
          if (script.stallAfterEvents !== undefined && i === script.stallAfterEvents) {
            flush()
            if (script.stallKeepAliveMs !== undefined) {
              while (live()) {
                await sleep(script.stallKeepAliveMs)
                if (live()) res.write(keepAlive(protocol))
              }
            }
            return
          }
          if (i === events.length) break
          out.push(formatEvent(events[i]!))
          if (script.delayMs) {
            flush()
            await sleep(script.delayMs)
          }
        }
        flush()
        res.end()
        return
      }
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
      const path = (req.url ?? "/").split("?")[0]!
      const protocol = req.method === "POST" && path.endsWith("/chat/completions")
        ? "chat"
        : req.method === "POST" && path.endsWith("/messages")
        ? "messages"
        : "other"
      const request: RecordedRequest = {
        method: req.method ?? "GET",
        path,
        headers: { ...req.headers },
        body,
        rawBody,
        protocol,
        receivedAt: Date.now(),
        closedByClient: false,
        finished: false
      }
      requests.push(request)
      res.on("finish", () => {
        request.finished = true
        notify()
      })
      res.on("close", () => {
        if (!request.finished) request.closedByClient = true
        notify()
      })
      notify()
      if (protocol === "other") {
        if (req.method === "GET" && path === "/health") {
          res.writeHead(health.status, { "content-type": "application/json" })
          res.end(JSON.stringify(health.body))
        } else if (req.method === "GET" && path.endsWith("/models")) {
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({ object: "list", data: [{ id: "fake-model", object: "model", owned_by: "fake" }] }))
        } else {
          res.writeHead(404, { "content-type": "application/json" })
          res.end(JSON.stringify({ error: { message: `no route ${req.method} ${path}`, type: "not_found_error", param: null, code: null } }))
        }
        return
      }
      void serve(request, res, queue.shift() ?? fallback)
    })
  })
  server.on("connection", (socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    enqueue: (...scripts) => {
      queue.push(...scripts)
    },
    setDefault: (script) => {
      fallback = script
    },
    setHealth: (status, body) => {
      health = { status, body }
    },
    requests,
    waitForClientClose: (n = 1, timeoutMs = 5_000) =>
      waitFor(() => requests.filter((request) => request.closedByClient).length >= n, `${n} client closes`, timeoutMs),
    waitForRequests: (n, timeoutMs = 5_000) => waitFor(() => requests.length >= n, `${n} requests`, timeoutMs),
    get openConnections() {
      return sockets.size
    },
    reset: () => {
      queue.length = 0
      requests.length = 0
      fallback = defaultScript
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}

/** A fake provider as a scoped resource: started on acquire, closed on release. */
export const make: Effect.Effect<FakeProvider, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() => start()),
  (server) => Effect.promise(() => server.close())
)

/** The fake provider in an Effect context. */
export class FakeProviderServer extends Context.Tag("test/FakeProviderServer")<FakeProviderServer, FakeProvider>() {}

/** A layer holding one fake provider for a whole suite. */
export const layer: Layer.Layer<FakeProviderServer> = Layer.scoped(FakeProviderServer, make)

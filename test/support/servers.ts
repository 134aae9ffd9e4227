/**
 * What each local OpenAI-compatible server sends, byte for byte, for the
 * dialect tests: its streamed chunks, its whole replies and the answers of
 * the endpoints `Local`'s detection probes. Each shape is written from the
 * server's own source (the file is named beside each renderer); the values
 * (ids, timestamps, numbers) are made up.
 */
import type { FakeProvider, RawReply } from "./FakeProvider.js"

/** A tool call as a server would stream it. */
export interface WireCall {
  readonly id: string
  readonly name: string
  readonly arguments: string
}

/** What a reply holds, whatever server renders it. */
export interface WireReply {
  readonly reasoning?: string
  readonly text?: string
  readonly calls?: ReadonlyArray<WireCall>
  /** Characters per text/reasoning/argument delta (default 5). */
  readonly piece?: number
}

const pieces = (text: string, size: number): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size))
  return out
}

const sse = (chunks: ReadonlyArray<object | string>): string =>
  chunks.map((chunk) => `data: ${typeof chunk === "string" ? chunk : JSON.stringify(chunk)}\n\n`).join("")

/** Cuts `body` into writes of the given sizes (cycled), as uneven network reads; `[]` is one write. */
export const cut = (body: string, sizes: ReadonlyArray<number>): Array<string> => {
  if (sizes.length === 0) return [body]
  const out: Array<string> = []
  for (let at = 0, i = 0; at < body.length; i++) {
    const size = sizes[i % sizes.length]!
    out.push(body.slice(at, at + size))
    at += size
  }
  return out
}

/** The chunkings the stream tests run under: one write, a byte a write, and uneven writes that cut events anywhere. */
export const chunkings: ReadonlyArray<ReadonlyArray<number>> = [[], [1], [7, 3], [64], [200, 1, 13]]

/** A raw SSE reply from a body cut as `sizes` says. */
export const rawStream = (body: string, sizes: ReadonlyArray<number> = []): RawReply => ({
  kind: "raw",
  status: 200,
  headers: { "content-type": "text/event-stream" },
  chunks: cut(body, sizes)
})

/** A raw JSON reply. */
export const rawJson = (body: object, status = 200): RawReply => ({
  kind: "raw",
  status,
  headers: { "content-type": "application/json" },
  chunks: [JSON.stringify(body)]
})

// ---------------------------------------------------------------------------
// llama.cpp llama-server
// ---------------------------------------------------------------------------

/** llama-server's `timings` (tools/server/server-task.cpp, `result_timings::to_json`). */
export interface LlamaTimings {
  readonly cache_n: number
  readonly prompt_n: number
  readonly prompt_ms: number
  readonly prompt_per_token_ms: number
  readonly prompt_per_second: number
  readonly predicted_n: number
  readonly predicted_ms: number
  readonly predicted_per_token_ms: number
  readonly predicted_per_second: number
}

export const llamaTimings: LlamaTimings = {
  cache_n: 1024,
  prompt_n: 61,
  prompt_ms: 203.378,
  prompt_per_token_ms: 3.334,
  prompt_per_second: 299.93,
  predicted_n: 42,
  predicted_ms: 933.63,
  predicted_per_token_ms: 22.229,
  predicted_per_second: 44.98
}

/** The usage llama-server reports (`usage_json_oaicompat`); older builds have no `prompt_tokens_details`. */
const llamaUsage = (details: boolean) => ({
  completion_tokens: 42,
  prompt_tokens: 1085,
  total_tokens: 1127,
  ...(details ? { prompt_tokens_details: { cached_tokens: 1024 } } : {})
})

/**
 * A llama-server stream (tools/server/server-task.cpp `to_json_oaicompat_chat_stream`
 * and `common_chat_msg_diff_to_json_oaicompat`): a first delta with `content: null`,
 * `reasoning_content` deltas, content deltas, tool calls opened by one delta with
 * `index`, `id`, `type` and the name, then argument fragments; a finish chunk with
 * an empty delta; with `include_usage`, a last chunk with `choices: []` and the
 * usage; `timings` on the last chunk. Captured shapes of b6097 and b6881 match.
 */
export const llamaStream = (
  reply: WireReply,
  options: { readonly usageDetails?: boolean; readonly timings?: LlamaTimings | undefined } = {}
): string => {
  const size = reply.piece ?? 5
  const frame = (choices: ReadonlyArray<object>) => ({
    choices,
    created: 1754523863,
    id: "chatcmpl-X6urH4f6JOotPwco2EgcgeoM6ZWup59u",
    model: "gpt-oss-20b",
    system_fingerprint: "b6881-8b11deea4",
    object: "chat.completion.chunk"
  })
  const delta = (d: object) => frame([{ finish_reason: null, index: 0, delta: d }])
  const chunks: Array<object | string> = [delta({ role: "assistant", content: null })]
  for (const piece of pieces(reply.reasoning ?? "", size)) chunks.push(delta({ reasoning_content: piece }))
  for (const piece of pieces(reply.text ?? "", size)) chunks.push(delta({ content: piece }))
  ;(reply.calls ?? []).forEach((call, index) => {
    chunks.push(delta({
      tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }]
    }))
    for (const piece of pieces(call.arguments, size)) {
      chunks.push(delta({ tool_calls: [{ index, function: { arguments: piece } }] }))
    }
  })
  const reason = (reply.calls ?? []).length > 0 ? "tool_calls" : "stop"
  chunks.push(frame([{ finish_reason: reason, index: 0, delta: {} }]))
  const last: Record<string, unknown> = { ...frame([]), usage: llamaUsage(options.usageDetails ?? true) }
  const timings = "timings" in options ? options.timings : llamaTimings
  if (timings !== undefined) last.timings = timings
  chunks.push(last)
  chunks.push("[DONE]")
  return sse(chunks)
}

/** A whole llama-server reply (`to_json_oaicompat_chat`): `timings` at the top level. */
export const llamaJson = (reply: WireReply, options: { readonly usageDetails?: boolean } = {}) => ({
  choices: [{
    finish_reason: (reply.calls ?? []).length > 0 ? "tool_calls" : "stop",
    index: 0,
    message: {
      role: "assistant",
      content: reply.text ?? null,
      ...(reply.reasoning === undefined ? {} : { reasoning_content: reply.reasoning }),
      ...((reply.calls ?? []).length > 0
        ? {
          tool_calls: reply.calls!.map((call) => ({
            type: "function",
            function: { name: call.name, arguments: call.arguments },
            id: call.id
          }))
        }
        : {})
    }
  }],
  created: 1754523863,
  model: "gpt-oss-20b",
  system_fingerprint: "b6881-8b11deea4",
  object: "chat.completion",
  usage: llamaUsage(options.usageDetails ?? true),
  id: "chatcmpl-X6urH4f6JOotPwco2EgcgeoM6ZWup59u",
  timings: llamaTimings
})

// ---------------------------------------------------------------------------
// Ollama
// ---------------------------------------------------------------------------

/**
 * An Ollama `/v1` stream (openai/openai.go `ToChunk`, middleware/openai.go
 * `ChatWriter`): every chunk repeats `role`, reasoning goes in `reasoning`,
 * each tool call arrives whole in one delta (with `index`), the finish chunk
 * says `tool_calls` once a call was sent, the usage chunk has `choices: []`.
 */
export const ollamaStream = (reply: WireReply): string => {
  const size = reply.piece ?? 5
  const frame = (choices: ReadonlyArray<object>, usage?: object) => ({
    id: "chatcmpl-417",
    object: "chat.completion.chunk",
    created: 1754524122,
    model: "gpt-oss:20b",
    system_fingerprint: "fp_ollama",
    choices,
    ...(usage === undefined ? {} : { usage })
  })
  const delta = (d: object, finish: string | null = null) =>
    frame([{ index: 0, delta: { role: "assistant", content: "", ...d }, finish_reason: finish }])
  const chunks: Array<object | string> = []
  for (const piece of pieces(reply.reasoning ?? "", size)) chunks.push(delta({ reasoning: piece }))
  for (const piece of pieces(reply.text ?? "", size)) chunks.push(delta({ content: piece }))
  ;(reply.calls ?? []).forEach((call, index) => {
    chunks.push(delta({
      tool_calls: [{ id: call.id, index, type: "function", function: { name: call.name, arguments: call.arguments } }]
    }))
  })
  chunks.push(delta({}, (reply.calls ?? []).length > 0 ? "tool_calls" : "stop"))
  chunks.push(frame([], { prompt_tokens: 88, completion_tokens: 12, total_tokens: 100 }))
  chunks.push("[DONE]")
  return sse(chunks)
}

/**
 * What Ollama's `/v1` stream carries when a tool call fails to parse after
 * output began: server/routes.go writes `{"error":"error parsing tool call: …"}`
 * into the stream, the `/v1` `ChatWriter` (status already 200) decodes it as an
 * empty `api.ChatResponse` and writes one empty delta; the body then ends,
 * without finish reason or `[DONE]`.
 */
export const ollamaSwallowedError = (reply: WireReply): string => {
  const whole = ollamaStream(reply).split("\n\n").filter((event) => event !== "")
  const content = whole.slice(0, -3) // no finish, usage or [DONE]
  const empty = {
    id: "chatcmpl-417",
    object: "chat.completion.chunk",
    created: 1754524122,
    model: "",
    system_fingerprint: "fp_ollama",
    choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]
  }
  return content.map((event) => `${event}\n\n`).join("") + sse([empty])
}

/** Ollama's tool-call parse error as its own message says it (server/routes.go). */
export const ollamaParseError = "error parsing tool call: raw='{\"city\":\"Oslo\"', err=unexpected end of JSON input"

/** The error body Ollama's `/v1` writes for a failure before any output (`openai.NewError`). */
export const ollamaErrorBody = (message: string) => ({
  error: { message, type: "api_error", param: null, code: null }
})

// ---------------------------------------------------------------------------
// vLLM
// ---------------------------------------------------------------------------

/**
 * A vLLM stream (vllm/entrypoints/openai serving_chat.py, `DeltaMessage`):
 * reasoning in `reasoning` (`reasoning_content` was renamed, vllm#27752, and
 * removed, vllm#33402), tool calls opened with `index`, `id`, `type` and the
 * name, then argument fragments; `logprobs: null` on every choice; the usage
 * chunk has `choices: []`.
 */
export const vllmStream = (reply: WireReply): string => {
  const size = reply.piece ?? 5
  const frame = (choices: ReadonlyArray<object>, usage?: object) => ({
    id: "chatcmpl-8f3c0a",
    object: "chat.completion.chunk",
    created: 1760000000,
    model: "openai/gpt-oss-20b",
    choices,
    ...(usage === undefined ? {} : { usage })
  })
  const delta = (d: object, finish: string | null = null) =>
    frame([{ index: 0, delta: d, logprobs: null, finish_reason: finish }])
  const chunks: Array<object | string> = [delta({ role: "assistant", content: "" })]
  for (const piece of pieces(reply.reasoning ?? "", size)) chunks.push(delta({ reasoning: piece }))
  for (const piece of pieces(reply.text ?? "", size)) chunks.push(delta({ content: piece }))
  ;(reply.calls ?? []).forEach((call, index) => {
    chunks.push(delta({
      tool_calls: [{ id: call.id, type: "function", index, function: { name: call.name, arguments: "" } }]
    }))
    for (const piece of pieces(call.arguments, size)) {
      chunks.push(delta({ tool_calls: [{ index, function: { arguments: piece } }] }))
    }
  })
  chunks.push(delta({ content: "" }, (reply.calls ?? []).length > 0 ? "tool_calls" : "stop"))
  chunks.push(frame([], { prompt_tokens: 90, total_tokens: 130, completion_tokens: 40 }))
  chunks.push("[DONE]")
  return sse(chunks)
}

// ---------------------------------------------------------------------------
// LM Studio
// ---------------------------------------------------------------------------

/**
 * An LM Studio stream: `system_fingerprint` is the model, every choice has
 * `logprobs: null`; gpt-oss reasoning goes in `reasoning` since 0.3.23
 * (lmstudio-bug-tracker#894; DeepSeek-style models used `reasoning_content`,
 * #378).
 */
export const lmstudioStream = (reply: WireReply): string => {
  const size = reply.piece ?? 5
  const frame = (choices: ReadonlyArray<object>, usage?: object) => ({
    id: "chatcmpl-ohpdozcvcgbgxq5y5y768",
    object: "chat.completion.chunk",
    created: 1738343241,
    model: "openai/gpt-oss-20b",
    system_fingerprint: "openai/gpt-oss-20b",
    choices,
    ...(usage === undefined ? {} : { usage })
  })
  const delta = (d: object, finish: string | null = null) =>
    frame([{ index: 0, delta: d, logprobs: null, finish_reason: finish }])
  const chunks: Array<object | string> = []
  for (const piece of pieces(reply.reasoning ?? "", size)) chunks.push(delta({ role: "assistant", reasoning: piece }))
  for (const piece of pieces(reply.text ?? "", size)) chunks.push(delta({ role: "assistant", content: piece }))
  ;(reply.calls ?? []).forEach((call, index) => {
    chunks.push(delta({
      tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }]
    }))
    for (const piece of pieces(call.arguments, size)) {
      chunks.push(delta({ tool_calls: [{ index, type: "function", function: { arguments: piece } }] }))
    }
  })
  chunks.push(delta({}, (reply.calls ?? []).length > 0 ? "tool_calls" : "stop"))
  chunks.push(frame([], { prompt_tokens: 70, completion_tokens: 20, total_tokens: 90 }))
  chunks.push("[DONE]")
  return sse(chunks)
}

// ---------------------------------------------------------------------------
// mlx_lm.server
// ---------------------------------------------------------------------------

/**
 * An `mlx_lm.server` stream (mlx_lm/server.py `generate_response`,
 * `handle_completion`): every delta carries `role`, `content`, `reasoning`
 * (null when none) and `tool_calls` (a list); a `: keepalive n/m` comment
 * while the prompt is processed; the usage chunk's `object` is
 * `chat.completion` with `choices: []`.
 */
export const mlxStream = (reply: WireReply): string => {
  const size = reply.piece ?? 5
  const frame = (object: string, choices: ReadonlyArray<object>, usage?: object) => ({
    id: "chatcmpl-3c1e2f4a-7b8d-4e0f-9a1b-2c3d4e5f6a7b",
    system_fingerprint: "0.28.3-0.29.2-macOS-15.6-arm64-arm-64bit-applegpu_g15s",
    object,
    model: "mlx-community/gpt-oss-20b-MXFP4-Q8",
    created: 1760000000,
    choices,
    ...(usage === undefined ? {} : { usage })
  })
  const delta = (
    d: { content?: string; reasoning?: string; tool_calls?: ReadonlyArray<object> },
    finish: string | null
  ) =>
    frame("chat.completion.chunk", [{
      index: 0,
      finish_reason: finish,
      delta: {
        role: "assistant",
        content: d.content ?? "",
        reasoning: d.reasoning ?? null,
        tool_calls: d.tool_calls ?? []
      }
    }])
  const chunks: Array<object | string> = []
  for (const piece of pieces(reply.reasoning ?? "", size)) chunks.push(delta({ reasoning: piece }, null))
  for (const piece of pieces(reply.text ?? "", size)) chunks.push(delta({ content: piece }, null))
  const calls = (reply.calls ?? []).map((call, index) => ({
    function: { name: call.name, arguments: call.arguments },
    type: "function",
    id: call.id,
    index
  }))
  chunks.push(delta({ tool_calls: calls }, calls.length > 0 ? "tool_calls" : "stop"))
  chunks.push(frame("chat.completion", [], { prompt_tokens: 50, completion_tokens: 10, total_tokens: 60 }))
  chunks.push("[DONE]")
  return ": keepalive 512/1024\n\n" + sse(chunks)
}

// ---------------------------------------------------------------------------
// What the detection probes see
// ---------------------------------------------------------------------------

/** The local servers the fake provider can pretend to be. */
export type Pretend = "llama.cpp" | "ollama" | "vllm" | "lmstudio" | "mlx" | "unknown"

/**
 * Makes `server` answer the probe endpoints as `as` does:
 * - llama-server: `/v1/models` with `owned_by: "llamacpp"` and `meta`, `/props`
 *   with `default_generation_settings`, `total_slots`, `build_info` (tools/server/README.md);
 * - Ollama: `/v1/models` with `owned_by` the model's namespace (`library` for the
 *   official ones; openai/openai.go `ToListCompletion`), `/api/version` `{"version"}`;
 * - vLLM: `/v1/models` with `owned_by: "vllm"`, `root`, `max_model_len`, `/version`
 *   `{"version"}` (vllm/entrypoints/openai/api_server.py);
 * - LM Studio: `/v1/models` with `owned_by: "organization_owner"`;
 * - mlx_lm.server: `/v1/models` entries without `owned_by` (mlx_lm/server.py
 *   `handle_models_request`), 404 `Not Found` text elsewhere;
 * - unknown: an OpenAI-style list owned by someone else, 404 elsewhere.
 */
export const pretend = (server: FakeProvider, as: Pretend, options: { readonly owner?: string } = {}): void => {
  const list = (entries: ReadonlyArray<object>) => ({ status: 200, body: { object: "list", data: entries } })
  const notFound = { status: 404, body: "Not Found" }
  for (const path of ["/props", "/api/version", "/version"]) server.setRoute(path, notFound)
  switch (as) {
    case "llama.cpp":
      server.setRoute(
        "/v1/models",
        list([{
          id: "gpt-oss-20b",
          object: "model",
          created: 1735142223,
          owned_by: options.owner ?? "llamacpp",
          meta: { vocab_type: 2, n_vocab: 201088, n_ctx_train: 131072, n_embd: 2880, n_params: 20914757184 }
        }])
      )
      server.setRoute("/props", {
        status: 200,
        body: {
          default_generation_settings: { id: 0, id_task: -1, n_ctx: 131072, params: { n_predict: -1 } },
          total_slots: 4,
          model_path: "/models/gpt-oss-20b-mxfp4.gguf",
          chat_template: "{# gpt-oss #}",
          modalities: { vision: false },
          build_info: "b6881-8b11deea4"
        }
      })
      return
    case "ollama":
      server.setRoute(
        "/v1/models",
        list([
          { id: "gpt-oss:20b", object: "model", created: 1754524000, owned_by: options.owner ?? "library" }
        ])
      )
      server.setRoute("/api/version", { status: 200, body: { version: "0.12.6" } })
      return
    case "vllm":
      server.setRoute(
        "/v1/models",
        list([{
          id: "openai/gpt-oss-20b",
          object: "model",
          created: 1760000000,
          owned_by: options.owner ?? "vllm",
          root: "openai/gpt-oss-20b",
          parent: null,
          max_model_len: 131072,
          permission: []
        }])
      )
      server.setRoute("/version", { status: 200, body: { version: "0.11.0" } })
      return
    case "lmstudio":
      server.setRoute(
        "/v1/models",
        list([
          { id: "openai/gpt-oss-20b", object: "model", owned_by: "organization_owner" },
          { id: "text-embedding-nomic-embed-text-v1.5", object: "model", owned_by: "organization_owner" }
        ])
      )
      return
    case "mlx":
      server.setRoute(
        "/v1/models",
        list([
          { id: "mlx-community/gpt-oss-20b-MXFP4-Q8", object: "model", created: 1760000000 }
        ])
      )
      return
    case "unknown":
      server.setRoute("/v1/models", list([{ id: "m", object: "model", created: 1, owned_by: "someone" }]))
      return
  }
}

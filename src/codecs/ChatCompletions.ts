/**
 * The OpenAI Chat Completions wire codec, shared by OpenAI, OpenRouter and
 * every local OpenAI-compatible server (llama.cpp, Ollama, vLLM, mlx_lm,
 * LM Studio). Pure functions: messages and options to a JSON body, response
 * JSON or SSE events to `StreamEvent`s.
 *
 * @since 0.1.0
 */
import type { LlmError } from "../errors.js"
import { readErrorBody } from "../internal/errorBody.js"
import { type ErrorContext, fromProviderFailure, quote, quoteLimits, responseError } from "../internal/errorFactory.js"
import { asNumber, asString, isObject, type Json } from "../internal/json.js"
import { constrained, responseFormatProblem } from "../internal/outputSchema.js"
import { warmUpMessages, warmUpProblem } from "../internal/promptCache.js"
import { effortOf } from "../internal/reasoning.js"
import { detailsToSend, ReasoningDetails } from "../internal/reasoningDetails.js"
import { badIndex, ToolCallBuffer, toToolCall, uniqueId, unnamed, withoutCalls } from "../internal/toolCalls.js"
import * as Trusted from "../internal/trustedClass.js"
import { validateRequest } from "../internal/validate.js"
import type { ReasoningOption, ResponseFormat } from "../Llm.js"
import { type JsonObject, type Message, ReasoningPart, type ToolCall, ToolCall as ToolCallClass } from "../Message.js"
import { type FinishReason, StreamEvent, Usage } from "../Reply.js"
import type {
  DecodedFinish,
  DecodedReply,
  EncodeInput,
  ServerTimings,
  StreamDecoder,
  WarmInput,
  WireCodec
} from "./WireCodec.js"

/**
 * What one server reads and sends, as data: the codec reads these fields
 * instead of asking which server it talks to. The built-in records are in
 * `dialects`; a custom one is a record of the same shape (spread a built-in
 * one and change what differs).
 *
 * @since 0.1.0
 */
export interface Dialect {
  /** `openai`, `openrouter`, `local`, `llama.cpp`, `ollama`, `vllm`, `lmstudio`, `mlx`, or a custom name. */
  readonly name: string
  /**
   * `content` of an assistant message that only calls tools: `null` (OpenAI,
   * OpenRouter) or `""` for servers that refuse null (LM Studio, mlx_lm,
   * llama-cpp-python).
   */
  readonly emptyAssistantContent: null | ""
  /** The field of the output limit: `max_completion_tokens` (OpenAI) or `max_tokens`. */
  readonly maxTokensField: "max_completion_tokens" | "max_tokens"
  /**
   * The field an assistant message's reasoning is sent back in, the one the
   * server reads (`reasoning_content`: llama-server; `reasoning`: Ollama,
   * vLLM, LM Studio, mlx_lm); undefined: never sent. Replies are read from
   * either field whatever this says.
   */
  readonly reasoningField?: "reasoning_content" | "reasoning" | undefined
  /**
   * How the `reasoning` option is sent: `openai` (`reasoning_effort`, nothing
   * for `{ enabled: false }`), a top-level `reasoning_effort` (`"none"` for
   * `{ enabled: false }`),
   * OpenRouter's `reasoning` object, or `chat_template_kwargs` (the chat
   * template's own arguments, as llama-server and mlx_lm pass them).
   */
  readonly reasoningRequest?: "openai" | "reasoning_effort" | "openrouter" | "chat_template_kwargs" | undefined
  /**
   * Whether an assistant message's `reasoning_details` (OpenRouter's typed
   * reasoning entries, kept in its reasoning parts) are sent back with it,
   * so that the upstream model takes its signed or encrypted reasoning back.
   */
  readonly reasoningDetails?: boolean | undefined
  /**
   * How a named tool choice is sent: the OpenAI `object`
   * (`{type:"function",function:{name}}`), or `required`: `tool_choice:
   * "required"` with only the named tool offered, for servers that read only
   * the string forms (llama-server replaces the object with `auto`).
   */
  readonly namedToolChoice: "object" | "required"
  /**
   * The server reads no `tool_choice` at all (Ollama, mlx_lm): none is sent,
   * and what can be is expressed by the tools offered: `"none"` offers none, a
   * named choice only that tool (with `namedToolChoice: "required"`);
   * `"required"` cannot be enforced.
   */
  readonly ignoresToolChoice?: boolean | undefined
  /** The role system messages are sent as. */
  readonly systemRole: "system" | "developer"
  /** Whether the server's `timings` (llama-server) are read into `ResponseMetadata.timings`. */
  readonly timings?: boolean | undefined
  /**
   * Whether the server reads `cache_prompt` and `id_slot` (llama-server): a
   * call's `promptCache.slot` is sent as `id_slot` with `cache_prompt: true`,
   * `promptCache: false` as `cache_prompt: false`; a warm-up asks for no
   * token (`max_tokens: 0`).
   */
  readonly cachePrompt?: boolean | undefined
  /**
   * Whether the server reads `prompt_cache_key` (OpenAI): a call's
   * `promptCache.key` is sent so; a warm-up asks for one token.
   */
  readonly promptCacheKey?: boolean | undefined
  /**
   * How a call's response format (structured output) is sent: `json_schema`
   * (the default: `response_format: {type: "json_schema", json_schema:
   * {name, schema}}`, which llama-server turns into a grammar and vLLM,
   * Ollama and LM Studio constrain decoding to), or `json_object`
   * (`response_format: {type: "json_object"}` and the schema in the system
   * prompt) for a server that reads no schema.
   */
  readonly responseFormat?: "json_schema" | "json_object" | undefined
  /**
   * Whether `json_schema` is sent in strict mode (OpenAI's): the schema in
   * the form strict mode takes (every property required, the optional ones
   * nullable, objects closed, the keywords it refuses dropped, all of them
   * still checked by the decode), `strict: true`; a schema with no such form
   * (free-form keys) is sent as it is with `strict: false`.
   */
  readonly strictSchema?: boolean | undefined
  /**
   * Whether a call with a response format asks OpenRouter to route only to
   * providers that take every parameter sent (`provider.require_parameters`),
   * so none that ignores the schema is chosen.
   */
  readonly requireParameters?: boolean | undefined
}

/**
 * The built-in dialects, with where each setting comes from:
 *
 * - `openai`: OpenAI's API. Reasoning is never sent back. Structured
 *   output in strict mode.
 * - `openrouter`: OpenRouter (`max_tokens`, its `reasoning` object).
 *   Structured output in strict mode, routed with `require_parameters`.
 * - `local`: any local server not known more precisely: `""` content, the
 *   named tool by `"required"` (honoured wherever a tool choice is),
 *   llama-server's reasoning field and timings read when present, its slot
 *   cache (`id_slot`, `cache_prompt`) used when a call names a slot.
 * - `llama.cpp`: llama-server (tools/server). It reads `tool_choice` only as
 *   a string (`json_value(body, "tool_choice", "auto")`: an object is logged
 *   as the wrong type and replaced by `auto`); it sends and reads
 *   `reasoning_content` (the gpt-oss template renders it as the analysis
 *   channel); `timings` on the last chunk; `reasoning_effort` through
 *   `chat_template_kwargs` (older builds read only that); `cache_prompt` and
 *   `id_slot`. Its gpt-oss template maps `system` to the developer message
 *   itself.
 * - `ollama`: Ollama's `/v1` (openai/openai.go). `reasoning` both ways;
 *   `tool_choice` is not a field of its request, so it is emulated;
 *   `reasoning_effort` accepts `high`, `medium`, `low` and `none` (off).
 * - `vllm`: vLLM. `reasoning` both ways (renamed from `reasoning_content`,
 *   vllm#27752, removed in vllm#33402); the object tool choice is honoured
 *   (guided decoding); `system` rather than `developer`, which chat
 *   templates of other models refuse (its gpt-oss path folds either into
 *   the Harmony preamble).
 * - `lmstudio`: LM Studio. `reasoning` for gpt-oss since 0.3.23; null
 *   content refused; the string tool choices only.
 * - `mlx`: `mlx_lm.server`. `reasoning`; no `tool_choice` read;
 *   `chat_template_kwargs` passed to the template; no `response_format`
 *   read (SERVER.md lists none), so a schema goes in the system prompt.
 *
 * Every local server but mlx_lm takes a response format as `json_schema`
 * (llama-server's grammar, vLLM's guided decoding, Ollama's `format`, LM
 * Studio's, which refuses `json_object`).
 *
 * @since 0.1.0
 */
export const dialects: Readonly<
  Record<"openai" | "openrouter" | "local" | "llama.cpp" | "ollama" | "vllm" | "lmstudio" | "mlx", Dialect>
> = {
  openai: {
    name: "openai",
    emptyAssistantContent: null,
    maxTokensField: "max_completion_tokens",
    reasoningRequest: "openai",
    namedToolChoice: "object",
    systemRole: "system",
    promptCacheKey: true,
    strictSchema: true
  },
  openrouter: {
    name: "openrouter",
    emptyAssistantContent: null,
    maxTokensField: "max_tokens",
    reasoningRequest: "openrouter",
    reasoningDetails: true,
    namedToolChoice: "object",
    systemRole: "system",
    strictSchema: true,
    requireParameters: true
  },
  local: {
    name: "local",
    emptyAssistantContent: "",
    maxTokensField: "max_tokens",
    reasoningField: "reasoning_content",
    reasoningRequest: "reasoning_effort",
    namedToolChoice: "required",
    systemRole: "system",
    timings: true,
    cachePrompt: true
  },
  "llama.cpp": {
    name: "llama.cpp",
    emptyAssistantContent: "",
    maxTokensField: "max_tokens",
    reasoningField: "reasoning_content",
    reasoningRequest: "chat_template_kwargs",
    namedToolChoice: "required",
    systemRole: "system",
    timings: true,
    cachePrompt: true
  },
  ollama: {
    name: "ollama",
    emptyAssistantContent: "",
    maxTokensField: "max_tokens",
    reasoningField: "reasoning",
    reasoningRequest: "reasoning_effort",
    namedToolChoice: "required",
    ignoresToolChoice: true,
    systemRole: "system"
  },
  vllm: {
    name: "vllm",
    emptyAssistantContent: "",
    maxTokensField: "max_tokens",
    reasoningField: "reasoning",
    reasoningRequest: "reasoning_effort",
    namedToolChoice: "object",
    systemRole: "system"
  },
  lmstudio: {
    name: "lmstudio",
    emptyAssistantContent: "",
    maxTokensField: "max_tokens",
    reasoningField: "reasoning",
    reasoningRequest: "reasoning_effort",
    namedToolChoice: "required",
    systemRole: "system"
  },
  mlx: {
    name: "mlx",
    emptyAssistantContent: "",
    maxTokensField: "max_tokens",
    reasoningField: "reasoning",
    reasoningRequest: "chat_template_kwargs",
    namedToolChoice: "required",
    ignoresToolChoice: true,
    systemRole: "system",
    responseFormat: "json_object"
  }
}

/**
 * The options of `make`: a dialect, and the older per-field options, which
 * refine it.
 *
 * @since 0.1.0
 */
export interface ChatCompletionsOptions {
  /** The dialect spoken (default: OpenAI's wire without the fields only OpenAI reads: no prompt cache key, no reasoning option). */
  readonly dialect?: Dialect | undefined
  /** Overrides the dialect's `emptyAssistantContent`. */
  readonly emptyAssistantContent?: null | "" | undefined
  /** Overrides the dialect's `maxTokensField`. */
  readonly maxTokensField?: "max_completion_tokens" | "max_tokens" | undefined
  /** Fields merged into every request body (e.g. OpenRouter's `provider` routing). */
  readonly extraBody?: Readonly<Record<string, unknown>> | undefined
  /** Overrides the dialect's `reasoningField` (e.g. `"reasoning"` for a server that reads that one). */
  readonly reasoningField?: Dialect["reasoningField"]
  /** Overrides the dialect's `reasoningRequest`. */
  readonly reasoningRequest?: Dialect["reasoningRequest"]
  /** Overrides the dialect's `cachePrompt`. */
  readonly cachePrompt?: boolean | undefined
  /** Overrides the dialect's `promptCacheKey`. */
  readonly promptCacheKey?: boolean | undefined
  /** Overrides the dialect's `responseFormat`. */
  readonly responseFormat?: Dialect["responseFormat"]
  /** Overrides the dialect's `strictSchema`. */
  readonly strictSchema?: boolean | undefined
}

/**
 * The dialect of `make` without one: OpenAI's wire, and nothing only OpenAI
 * reads (no `prompt_cache_key`, no reasoning field), so a custom server gets
 * no field it may refuse.
 */
const plain: Dialect = {
  ...dialects.openai,
  name: "chat-completions",
  reasoningRequest: undefined,
  promptCacheKey: undefined
}

/** The dialect `make` speaks: the given one (or `plain`), refined by the per-field options. */
const dialectOf = (options: ChatCompletionsOptions): Dialect => {
  const { dialect, extraBody: _extraBody, ...overrides } = options
  const refined: Record<string, unknown> = { ...(dialect ?? plain) }
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) refined[key] = value
  return refined as unknown as Dialect
}

/** The text of reasoning parts a Chat Completions server can take back: all but redacted ones. */
const reasoningText = (parts: ReadonlyArray<ReasoningPart> | undefined): string => {
  if (parts === undefined) return ""
  const texts: Array<string> = []
  for (const part of parts) if (part.redacted === undefined && part.text !== "") texts.push(part.text)
  return texts.join("\n\n")
}

/**
 * One message on the wire. An assistant message's reasoning goes back in the
 * dialect's `reasoningField`, on tool-call turns without text only: chat
 * templates render it before the call (gpt-oss's analysis channel) and drop
 * it from finished turns, and gpt-oss's template refuses a tool-call message
 * with both text and reasoning.
 */
const encodeMessage = (message: Message, dialect: Dialect): Json => {
  switch (message.role) {
    case "system":
      return { role: dialect.systemRole, content: message.content }
    case "user":
      return { role: message.role, content: message.content }
    case "assistant": {
      const details = dialect.reasoningDetails === true ? detailsToSend(message.reasoning) : undefined
      if (message.toolCalls.length === 0) {
        return details === undefined
          ? { role: "assistant", content: message.content }
          : { role: "assistant", content: message.content, reasoning_details: details }
      }
      const wire: Json = {
        role: "assistant",
        content: message.content === "" ? dialect.emptyAssistantContent : message.content
      }
      if (details !== undefined) wire.reasoning_details = details
      if (dialect.reasoningField !== undefined && message.content === "") {
        const reasoning = reasoningText(message.reasoning)
        if (reasoning !== "") wire[dialect.reasoningField] = reasoning
      }
      wire.tool_calls = message.toolCalls.map((call) => ({
        id: call.id,
        type: "function",
        function: { name: call.name, arguments: JSON.stringify(call.arguments) }
      }))
      return wire
    }
    case "tool":
      return { role: "tool", tool_call_id: message.toolCallId, content: message.content }
  }
}

/** Adds the fields the `reasoning` option becomes under `request` to `body`. */
const encodeReasoning = (
  body: Json,
  option: ReasoningOption,
  request: Dialect["reasoningRequest"]
): void => {
  const off = "enabled" in option
  switch (request) {
    case "openai":
      // "none" exists only from gpt-5.1 on (its default), and older reasoning models refuse it
      if (!off) body.reasoning_effort = effortOf(option)
      return
    case "reasoning_effort":
      body.reasoning_effort = off ? "none" : effortOf(option)
      return
    case "openrouter":
      body.reasoning = off
        ? { enabled: false }
        : "effort" in option
        ? { effort: option.effort }
        : { max_tokens: option.budgetTokens }
      return
    case "chat_template_kwargs": {
      const kwargs = isObject(body.chat_template_kwargs) ? body.chat_template_kwargs : {}
      body.chat_template_kwargs = off
        ? { ...kwargs, enable_thinking: false }
        : { ...kwargs, reasoning_effort: effortOf(option) }
      return
    }
    case undefined:
      return
  }
}

/**
 * Puts the tools and the tool choice in `body` as the dialect reads them: a
 * named choice as the object, or as `"required"` with only that tool; for a
 * server that reads no tool choice, `"none"` by offering no tools.
 */
const encodeTools = (body: Json, call: EncodeInput["options"], dialect: Dialect): void => {
  const choice = call.toolChoice
  let tools = call.tools ?? []
  if (choice === "none" && dialect.ignoresToolChoice === true) tools = []
  else if (typeof choice === "object" && dialect.namedToolChoice === "required") {
    tools = tools.filter((tool) => tool.name === choice.name)
  }
  if (tools.length > 0) {
    body.tools = tools.map((tool) => ({
      type: "function",
      function: { name: tool.name, description: tool.description, parameters: tool.parameters }
    }))
  }
  if (choice === undefined || dialect.ignoresToolChoice === true) return
  body.tool_choice = typeof choice === "string"
    ? choice
    : dialect.namedToolChoice === "required"
    ? "required"
    : { type: "function", function: { name: choice.name } }
}

/** What a server that reads no schema is told in the system prompt. */
const schemaInstruction = (format: ResponseFormat): string =>
  `Reply with only one JSON value${
    format.description === undefined ? "" : ` (${format.description})`
  }, with no other text, that matches this JSON Schema:\n${JSON.stringify(format.schema)}`

/**
 * Puts a call's response format in `body` as the dialect reads it: the
 * `json_schema` response format (strict where the dialect says, with
 * OpenRouter's `require_parameters`), or `json_object` with the schema in
 * the first system message (one is added when there is none).
 */
const encodeResponseFormat = (body: Json, format: ResponseFormat, dialect: Dialect): void => {
  if (dialect.responseFormat === "json_object") {
    body.response_format = { type: "json_object" }
    const messages = body.messages as Array<Json>
    const first = messages[0]
    const instruction = schemaInstruction(format)
    if (first !== undefined && first.role === dialect.systemRole && typeof first.content === "string") {
      messages[0] = { ...first, content: first.content === "" ? instruction : `${first.content}\n\n${instruction}` }
    } else messages.unshift({ role: dialect.systemRole, content: instruction })
  } else {
    const strict = dialect.strictSchema === true ? constrained(format.schema, { allRequired: true }) : undefined
    body.response_format = {
      type: "json_schema",
      json_schema: {
        name: format.name,
        ...(format.description === undefined ? {} : { description: format.description }),
        schema: strict ?? format.schema,
        ...(dialect.strictSchema === true ? { strict: strict !== undefined } : {})
      }
    }
  }
  if (dialect.requireParameters === true) {
    body.provider = { ...(isObject(body.provider) ? body.provider : {}), require_parameters: true }
  }
}

/** Maps a Chat Completions `finish_reason` to ours. */
const finishReasonFromWire = (reason: string | undefined): FinishReason => {
  switch (reason) {
    case "stop":
      return "stop"
    case "length":
      return "length"
    case "tool_calls":
    case "function_call":
      return "tool_calls"
    case "content_filter":
      return "content_filter"
    default:
      return "other"
  }
}

/**
 * The finish reason to report: servers disagree, so tool calls present mean
 * `tool_calls`, and `tool_calls` without any call means `stop`.
 */
const finalReason = (reason: string | undefined, hasToolCalls: boolean): FinishReason => {
  const mapped = reason === undefined ? "stop" : finishReasonFromWire(reason)
  return hasToolCalls && (mapped === "stop" || mapped === "other") ? "tool_calls" : withoutCalls(mapped, hasToolCalls)
}

/** Reads a Chat Completions `usage` object. */
const usageFromWire = (usage: unknown): Usage | undefined => {
  if (!isObject(usage)) return undefined
  const inputTokens = asNumber(usage.prompt_tokens) ?? 0
  const outputTokens = asNumber(usage.completion_tokens) ?? 0
  const cached = isObject(usage.prompt_tokens_details) ? asNumber(usage.prompt_tokens_details.cached_tokens) : undefined
  const reasoning = isObject(usage.completion_tokens_details)
    ? asNumber(usage.completion_tokens_details.reasoning_tokens)
    : undefined
  const cost = reportedCost(usage)
  return Trusted.usage({
    inputTokens,
    outputTokens,
    totalTokens: asNumber(usage.total_tokens) ?? inputTokens + outputTokens,
    ...(cached === undefined ? {} : { cachedInputTokens: cached }),
    ...(reasoning === undefined ? {} : { reasoningTokens: reasoning }),
    ...(cost === undefined ? {} : { cost })
  })
}

/**
 * The cost a server reports in its usage (OpenRouter's `cost`, in credits of
 * one US dollar): what was charged, plus, when the request ran on the user's
 * own provider key (`is_byok`), what that provider charged
 * (`cost_details.upstream_inference_cost`).
 */
const reportedCost = (usage: Record<string, unknown>): number | undefined => {
  const charged = asNumber(usage.cost)
  if (charged === undefined || charged < 0) return undefined
  const upstream = usage.is_byok === true && isObject(usage.cost_details)
    ? asNumber(usage.cost_details.upstream_inference_cost)
    : undefined
  return upstream === undefined || upstream < 0 ? charged : charged + upstream
}

/**
 * Reads llama-server's `timings` (tools/server/server-task.cpp,
 * `result_timings::to_json`): `prompt_n`, `prompt_ms`, `prompt_per_second`,
 * `predicted_n`, `predicted_ms`, `predicted_per_second`, `cache_n`.
 */
const timingsFromWire = (timings: unknown): ServerTimings | undefined => {
  if (!isObject(timings)) return undefined
  const out: { -readonly [K in keyof ServerTimings]: number } = {}
  const read = (key: keyof ServerTimings, value: unknown) => {
    const number = asNumber(value)
    if (number !== undefined && number >= 0) out[key] = number
  }
  read("promptTokens", timings.prompt_n)
  read("promptMillis", timings.prompt_ms)
  read("promptTokensPerSecond", timings.prompt_per_second)
  read("generationTokens", timings.predicted_n)
  read("generationMillis", timings.predicted_ms)
  read("generationTokensPerSecond", timings.predicted_per_second)
  read("cachedPromptTokens", timings.cache_n)
  return Object.keys(out).length === 0 ? undefined : out
}

/** The usage, its cached prompt tokens taken from the timings when the usage has none (older llama-server builds). */
const withCachedFrom = (usage: Usage, timings: ServerTimings | undefined): Usage =>
  usage.cachedInputTokens !== undefined || timings?.cachedPromptTokens === undefined || usage === Usage.empty
    ? usage
    : Trusted.usage({ ...usage, cachedInputTokens: timings.cachedPromptTokens })

/** An in-band error object (OpenAI's `data: {"error":…}`, OpenRouter's error chunk) as an `LlmError`. */
const inBandError = (context: ErrorContext, error: unknown): LlmError => {
  const read = readErrorBody({ error })
  const code = isObject(error) ? error.code : undefined
  return fromProviderFailure(context, {
    // OpenRouter puts the HTTP status it would have sent in `code`
    status: typeof code === "number" && code >= 400 ? code : undefined,
    ...read
  })
}

/** The reasoning of a message or delta: `reasoning_content` (llama.cpp, DeepSeek, older vLLM) before `reasoning` (OpenRouter, newer vLLM, Ollama). */
const reasoningOf = (message: Json): string | undefined =>
  asString(message.reasoning_content) ?? asString(message.reasoning)

/** The text of a part's field: a string, or an array of text parts (Mistral's `thinking: [{type:"text",text}]`). */
const partText = (value: unknown): string => {
  if (typeof value === "string") return value
  if (!Array.isArray(value)) return ""
  let text = ""
  for (const part of value) if (isObject(part) && part.type === "text") text += asString(part.text) ?? ""
  return text
}

/**
 * Reads `content` given as an array of typed parts (some OpenAI-compatible
 * servers, Mistral): `text` parts are text, `thinking` and `reasoning` parts
 * reasoning; a part of any other type is skipped, never the whole content.
 */
const readParts = (parts: ReadonlyArray<unknown>): { text: string; reasoning: string } => {
  let text = ""
  let reasoning = ""
  for (const part of parts) {
    if (!isObject(part)) continue
    switch (part.type) {
      case "text":
        text += asString(part.text) ?? ""
        break
      case "thinking":
      case "reasoning":
        reasoning += partText(part.thinking ?? part.reasoning ?? part.text)
        break
      default:
        // images, audio, refusals and part types added later carry no text of the reply
        break
    }
  }
  return { text, reasoning }
}

const decodeResponse = (body: unknown, context: ErrorContext, dialect: Dialect): DecodedReply | LlmError => {
  if (!isObject(body)) return responseError(context, "the response is not a JSON object", 200)
  if (body.error !== undefined && body.error !== null) return inBandError(context, body.error)
  const choice = Array.isArray(body.choices) ? body.choices[0] : undefined
  if (!isObject(choice) || !isObject(choice.message)) {
    return responseError(context, "the response has no choices[0].message", 200)
  }
  if (choice.finish_reason === "error" || isObject(choice.error)) return inBandError(context, choice.error)
  const message = choice.message
  const toolCalls: Array<ToolCall> = []
  if (Array.isArray(message.tool_calls)) {
    const ids = new Set<string>()
    for (let index = 0; index < message.tool_calls.length; index++) {
      const call: unknown = message.tool_calls[index]
      const fn = isObject(call) && isObject(call.function) ? call.function : undefined
      const id = uniqueId(ids, (isObject(call) ? asString(call.id) : undefined) ?? "", `call_${index}`)
      const name = fn === undefined ? undefined : asString(fn.name)
      if (name === undefined) return unnamed(context, index, id)
      const parsed = toToolCall(context, index, id, name, fn!.arguments as string | object | null | undefined)
      if (!(parsed instanceof ToolCallClass)) return parsed
      toolCalls.push(parsed)
    }
  }
  let content = asString(message.content) ?? ""
  // a structured output's refusal (OpenAI) is the reply's text, its finish content_filter
  const refusal = asString(message.refusal)
  if (refusal && content === "") content = refusal
  let reasoning = reasoningOf(message)
  if (Array.isArray(message.content)) {
    const parts = readParts(message.content)
    content = parts.text
    if (parts.reasoning !== "") reasoning = (reasoning ?? "") + parts.reasoning
  }
  let details: ReadonlyArray<JsonObject> | undefined
  if (Array.isArray(message.reasoning_details)) {
    const folded = new ReasoningDetails()
    const text = folded.push(message.reasoning_details)
    details = folded.result()
    if (!reasoning && text !== "") reasoning = text
  }
  const timings = dialect.timings === true ? timingsFromWire(body.timings) : undefined
  return {
    content,
    ...(reasoning ? { reasoning } : {}),
    reasoningParts: reasoning || details !== undefined
      ? [
        new ReasoningPart({
          text: reasoning ?? "",
          ...(details === undefined ? {} : { details }),
          provider: context.provider
        }, true)
      ]
      : [],
    toolCalls,
    finishReason: refusal ? "content_filter" : finalReason(asString(choice.finish_reason), toolCalls.length > 0),
    usage: withCachedFrom(usageFromWire(body.usage) ?? Usage.empty, timings),
    model: asString(body.model) ?? context.model,
    responseId: asString(body.id),
    ...(timings === undefined ? {} : { timings })
  }
}

class ChatStreamDecoder implements StreamDecoder {
  done = false
  private readonly toolCalls: ToolCallBuffer
  private finishReason: string | undefined
  private reported: Usage | undefined
  private model: string | undefined
  private responseId: string | undefined
  private timings: ServerTimings | undefined
  private lastSlot = -1
  /** Whether any chunk carried a choice: a stream without one (`choices` absent or always `[]`) is not a reply, [DONE] or not. */
  private sawChoice = false
  /** Whether a refusal was streamed (`delta.refusal`): the reply's text, its finish content_filter. */
  private refused = false
  /** OpenRouter's `reasoning_details`, folded; with the reasoning streamed, they make the reply's reasoning part. */
  private readonly details = new ReasoningDetails()
  private readonly reasoning: Array<string> = []

  constructor(private readonly context: ErrorContext, private readonly readTimings: boolean) {
    this.toolCalls = new ToolCallBuffer(context, "call_")
  }

  usage(): Usage | undefined {
    return this.reported === undefined ? undefined : withCachedFrom(this.reported, this.timings)
  }

  push(_event: string | undefined, data: string, out: Array<StreamEvent>): LlmError | undefined {
    if (this.done) return undefined
    if (data === "[DONE]") {
      this.done = true
      return undefined
    }
    let chunk: unknown
    try {
      chunk = JSON.parse(data)
    } catch {
      return responseError(this.context, `malformed stream chunk: ${quote(this.context, data, quoteLimits.text)}`)
    }
    if (!isObject(chunk)) {
      return responseError(
        this.context,
        `stream chunk is not a JSON object: ${quote(this.context, data, quoteLimits.text)}`
      )
    }
    // read before an in-band error: what the chunk reports was billed either way
    const usage = usageFromWire(chunk.usage)
    if (usage !== undefined) this.reported = usage
    if (chunk.error !== undefined && chunk.error !== null) return inBandError(this.context, chunk.error)
    if (this.model === undefined) this.model = asString(chunk.model)
    if (this.responseId === undefined) this.responseId = asString(chunk.id)
    // llama-server puts its timings on the last chunk (every chunk with `timings_per_token`)
    if (this.readTimings && chunk.timings !== undefined) this.timings = timingsFromWire(chunk.timings) ?? this.timings
    const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined
    if (!isObject(choice)) return undefined
    this.sawChoice = true
    if (choice.finish_reason === "error") return inBandError(this.context, choice.error)
    const delta = choice.delta
    if (isObject(delta)) {
      let reasoning = reasoningOf(delta)
      const fragments = delta.reasoning_details
      if (Array.isArray(fragments) && fragments.length > 0) {
        // the same text as `reasoning` when both come; the only text when the entries come alone
        const text = this.details.push(fragments)
        if (!reasoning) reasoning = text
      }
      if (reasoning) {
        this.reasoning.push(reasoning)
        out.push(StreamEvent.ReasoningDelta({ text: reasoning }))
      }
      const content = delta.content
      if (typeof content === "string") {
        if (content) out.push(StreamEvent.TextDelta({ text: content }))
      } else if (Array.isArray(content)) {
        const parts = readParts(content)
        if (parts.reasoning) out.push(StreamEvent.ReasoningDelta({ text: parts.reasoning }))
        if (parts.text) out.push(StreamEvent.TextDelta({ text: parts.text }))
      }
      const refusal = delta.refusal
      if (typeof refusal === "string" && refusal !== "") {
        this.refused = true
        out.push(StreamEvent.TextDelta({ text: refusal }))
      }
      if (Array.isArray(delta.tool_calls)) {
        for (const fragment of delta.tool_calls) {
          const error = isObject(fragment) ? this.pushToolFragment(fragment, out) : undefined
          if (error !== undefined) return error
        }
      }
    }
    const reason = asString(choice.finish_reason)
    if (reason !== undefined) this.finishReason = reason
    return undefined
  }

  /**
   * Finds the slot of a tool-call fragment: by `index` (which must be an
   * integer from 0 to `maxToolCalls` - 1), else by `id`, else by position.
   */
  private slotOf(fragment: Json, fn: Json | undefined): number | LlmError {
    const named = fn !== undefined && Boolean(asString(fn.name))
    if (fragment.index !== undefined && fragment.index !== null) {
      return badIndex(this.context, fragment.index) ?? fragment.index as number
    }
    const id = asString(fragment.id)
    if (id) {
      const known = this.toolCalls.indexOfId(id)
      // a known id naming a function again is another call that reuses the id (whole calls, as Ollama sends them)
      return known >= 0 && !(named && this.toolCalls.isNamed(known)) ? known : this.toolCalls.nextIndex
    }
    // no index, no id: a new call if it names a function, else the current one
    if (named && this.lastSlot >= 0) return this.toolCalls.nextIndex
    return Math.max(this.lastSlot, 0)
  }

  private pushToolFragment(fragment: Json, out: Array<StreamEvent>): LlmError | undefined {
    const fn = isObject(fragment.function) ? fragment.function : undefined
    const index = this.slotOf(fragment, fn)
    if (typeof index !== "number") return index
    this.lastSlot = index
    const name = fn === undefined ? undefined : asString(fn.name)
    if (!this.toolCalls.has(index)) {
      const error = this.toolCalls.start(index, asString(fragment.id) ?? "", name ?? "", out)
      if (error !== undefined) return error
    } else if (name) {
      this.toolCalls.rename(index, name)
    }
    const args = fn?.arguments
    if (typeof args === "string") this.toolCalls.append(index, args, out)
    else if (isObject(args)) this.toolCalls.append(index, JSON.stringify(args), out)
    return undefined
  }

  finish(out: Array<StreamEvent>): DecodedFinish | LlmError {
    if (!this.done && this.finishReason === undefined) {
      return responseError(this.context, "the stream ended before the reply was complete (no finish reason, no [DONE])")
    }
    if (!this.sawChoice) return responseError(this.context, "the stream carried no choice: it is not a chat completion")
    const calls = this.toolCalls.complete(out)
    if (!Array.isArray(calls)) return calls
    const details = this.details.result()
    if (details !== undefined) {
      // closes the reasoning streamed so far as one part that carries the entries
      const part = new ReasoningPart({ text: this.reasoning.join(""), details, provider: this.context.provider }, true)
      out.push(StreamEvent.ReasoningPart({ part }))
    }
    const timings = this.timings
    return {
      finishReason: this.refused ? "content_filter" : finalReason(this.finishReason, calls.length > 0),
      usage: withCachedFrom(this.reported ?? Usage.empty, timings),
      model: this.model ?? this.context.model,
      responseId: this.responseId,
      ...(timings === undefined ? {} : { timings })
    }
  }
}

/**
 * Builds the Chat Completions codec for one dialect (`options.dialect`, by
 * default OpenAI's), the older per-field options refining it.
 *
 * @since 0.1.0
 */
export const make = (options: ChatCompletionsOptions = {}): WireCodec => {
  const dialect = dialectOf(options)
  const readTimings = dialect.timings === true
  const encode = (
    { messages, model, options: call, stream }: EncodeInput
  ): { readonly body: Json } | { readonly invalid: string } => {
    const invalid = validateRequest(messages, call)
    if (invalid !== undefined) return { invalid }
    const body: Json = {
      ...options.extraBody,
      model,
      messages: messages.map((message) => encodeMessage(message, dialect))
    }
    if (stream) {
      body.stream = true
      body.stream_options = { include_usage: true }
    }
    if (call.maxTokens !== undefined) body[dialect.maxTokensField] = call.maxTokens
    if (call.temperature !== undefined) body.temperature = call.temperature
    if (call.topP !== undefined) body.top_p = call.topP
    if (call.stop !== undefined && call.stop.length > 0) body.stop = call.stop
    encodeTools(body, call, dialect)
    if (call.reasoning !== undefined) encodeReasoning(body, call.reasoning, dialect.reasoningRequest)
    if (call.responseFormat !== undefined) {
      const problem = responseFormatProblem(call.responseFormat)
      if (problem !== undefined) return { invalid: problem }
      encodeResponseFormat(body, call.responseFormat, dialect)
    }
    const cache = call.promptCache
    if (dialect.cachePrompt === true) {
      if (cache === false) body.cache_prompt = false
      else if (cache?.slot !== undefined) {
        body.id_slot = cache.slot
        body.cache_prompt = true
      }
    }
    if (dialect.promptCacheKey === true && cache !== false && cache?.key !== undefined) {
      body.prompt_cache_key = cache.key
    }
    return { body }
  }
  /** A warm-up: the prefix, then the placeholder turn; llama-server evaluates it into the slot without generating, OpenAI needs one token. */
  const warm = (input: WarmInput): { readonly body: unknown } | { readonly invalid: string } => {
    const problem = warmUpProblem(input.options)
    if (problem !== undefined) return { invalid: problem }
    const encoded = encode({ ...input, messages: warmUpMessages(input.messages), stream: false })
    if ("invalid" in encoded) return encoded
    return { body: { ...encoded.body, [dialect.maxTokensField]: dialect.cachePrompt === true ? 0 : 1 } }
  }
  return {
    path: "/chat/completions",
    encode,
    ...(dialect.cachePrompt === true || dialect.promptCacheKey === true ? { warm } : {}),
    decodeResponse: (body, context) => decodeResponse(body, context, dialect),
    streamDecoder: (context) => new ChatStreamDecoder(context, readTimings),
    readError: readErrorBody
  }
}

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
import { warmUpMessages, warmUpProblem } from "../internal/promptCache.js"
import { effortOf } from "../internal/reasoning.js"
import { badIndex, ToolCallBuffer, toToolCall, uniqueId, unnamed, withoutCalls } from "../internal/toolCalls.js"
import { validateRequest } from "../internal/validate.js"
import type { ReasoningOption } from "../Llm.js"
import { type Message, ReasoningPart, type ToolCall, ToolCall as ToolCallClass } from "../Message.js"
import { type FinishReason, StreamEvent, Usage } from "../Reply.js"
import type { DecodedFinish, DecodedReply, EncodeInput, StreamDecoder, WarmInput, WireCodec } from "./WireCodec.js"

/**
 * How a Chat Completions dialect differs between servers.
 *
 * @since 0.1.0
 */
export interface ChatCompletionsOptions {
  /**
   * `content` of an assistant message that only calls tools: `null` for OpenAI
   * and OpenRouter, `""` for local servers that reject null (LM Studio,
   * llama-cpp-python).
   */
  readonly emptyAssistantContent?: null | ""
  /** The field for the output limit: `max_completion_tokens` (OpenAI) or `max_tokens`. */
  readonly maxTokensField?: "max_completion_tokens" | "max_tokens"
  /** Fields merged into every request body (e.g. OpenRouter's `provider` routing). */
  readonly extraBody?: Readonly<Record<string, unknown>>
  /**
   * llama-server's prompt cache: a call's `promptCache.slot` is sent as
   * `id_slot` with `cache_prompt: true`, `promptCache: false` as
   * `cache_prompt: false`; a warm-up asks for no token (`max_tokens: 0`).
   */
  readonly cachePrompt?: boolean
  /**
   * OpenAI's prompt cache routing: a call's `promptCache.key` is sent as
   * `prompt_cache_key`; a warm-up asks for one token.
   */
  readonly promptCacheKey?: boolean
  /**
   * The field of an assistant message the server reads reasoning back from
   * (`reasoning_content`: llama.cpp, vLLM; `reasoning`: Ollama, LM Studio's
   * gpt-oss, vLLM); unset, reasoning is never sent back (OpenAI,
   * OpenRouter).
   */
  readonly reasoningField?: "reasoning_content" | "reasoning" | undefined
  /**
   * How the `reasoning` option is sent: `openai` (`reasoning_effort`; nothing
   * for `{ enabled: false }`), `reasoning_effort` (`"none"` for `{ enabled:
   * false }`: llama.cpp, Ollama), `openrouter` (`reasoning: { effort |
   * max_tokens | enabled }`), `chat_template_kwargs` (`{ reasoning_effort }`,
   * or `{ enable_thinking: false }`); unset, the option is not sent.
   */
  readonly reasoningRequest?: "openai" | "reasoning_effort" | "openrouter" | "chat_template_kwargs" | undefined
}

/** The text of reasoning parts a Chat Completions server can take back: all but redacted ones. */
const reasoningText = (parts: ReadonlyArray<ReasoningPart> | undefined): string => {
  if (parts === undefined) return ""
  const texts: Array<string> = []
  for (const part of parts) if (part.redacted === undefined && part.text !== "") texts.push(part.text)
  return texts.join("\n\n")
}

/**
 * One message on the wire. An assistant message's reasoning goes back in
 * `reasoningField`, on tool-call turns without text only: chat templates
 * render it before the call (gpt-oss's analysis channel) and drop it from
 * finished turns, and gpt-oss's template refuses a tool-call message with
 * both text and reasoning.
 */
const encodeMessage = (
  message: Message,
  emptyAssistantContent: null | "",
  reasoningField: ChatCompletionsOptions["reasoningField"]
): Json => {
  switch (message.role) {
    case "system":
    case "user":
      return { role: message.role, content: message.content }
    case "assistant": {
      if (message.toolCalls.length === 0) return { role: "assistant", content: message.content }
      const wire: Json = {
        role: "assistant",
        content: message.content === "" ? emptyAssistantContent : message.content
      }
      if (reasoningField !== undefined && message.content === "") {
        const reasoning = reasoningText(message.reasoning)
        if (reasoning !== "") wire[reasoningField] = reasoning
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
  request: ChatCompletionsOptions["reasoningRequest"]
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

const encodeToolChoice = (choice: NonNullable<EncodeInput["options"]["toolChoice"]>): unknown =>
  typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } }

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
  return new Usage({
    inputTokens,
    outputTokens,
    totalTokens: asNumber(usage.total_tokens) ?? inputTokens + outputTokens,
    ...(cached === undefined ? {} : { cachedInputTokens: cached }),
    ...(reasoning === undefined ? {} : { reasoningTokens: reasoning })
  }, true)
}

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

const decodeResponse = (body: unknown, context: ErrorContext): DecodedReply | LlmError => {
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
  let reasoning = reasoningOf(message)
  if (Array.isArray(message.content)) {
    const parts = readParts(message.content)
    content = parts.text
    if (parts.reasoning !== "") reasoning = (reasoning ?? "") + parts.reasoning
  }
  return {
    content,
    ...(reasoning ? { reasoning } : {}),
    reasoningParts: reasoning ? [new ReasoningPart({ text: reasoning, provider: context.provider }, true)] : [],
    toolCalls,
    finishReason: finalReason(asString(choice.finish_reason), toolCalls.length > 0),
    usage: usageFromWire(body.usage) ?? Usage.empty,
    model: asString(body.model) ?? context.model,
    responseId: asString(body.id)
  }
}

class ChatStreamDecoder implements StreamDecoder {
  done = false
  private readonly toolCalls: ToolCallBuffer
  private finishReason: string | undefined
  private usage: Usage | undefined
  private model: string | undefined
  private responseId: string | undefined
  private lastSlot = -1
  /** Whether any chunk carried a choice: a stream without one (`choices` absent or always `[]`) is not a reply, [DONE] or not. */
  private sawChoice = false

  constructor(private readonly context: ErrorContext) {
    this.toolCalls = new ToolCallBuffer(context, "call_")
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
    if (chunk.error !== undefined && chunk.error !== null) return inBandError(this.context, chunk.error)
    if (this.model === undefined) this.model = asString(chunk.model)
    if (this.responseId === undefined) this.responseId = asString(chunk.id)
    const usage = usageFromWire(chunk.usage)
    if (usage !== undefined) this.usage = usage
    const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined
    if (!isObject(choice)) return undefined
    this.sawChoice = true
    if (choice.finish_reason === "error") return inBandError(this.context, choice.error)
    const delta = choice.delta
    if (isObject(delta)) {
      const reasoning = reasoningOf(delta)
      if (reasoning) out.push(StreamEvent.ReasoningDelta({ text: reasoning }))
      const content = delta.content
      if (typeof content === "string") {
        if (content) out.push(StreamEvent.TextDelta({ text: content }))
      } else if (Array.isArray(content)) {
        const parts = readParts(content)
        if (parts.reasoning) out.push(StreamEvent.ReasoningDelta({ text: parts.reasoning }))
        if (parts.text) out.push(StreamEvent.TextDelta({ text: parts.text }))
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
    return {
      finishReason: finalReason(this.finishReason, calls.length > 0),
      usage: this.usage ?? Usage.empty,
      model: this.model ?? this.context.model,
      responseId: this.responseId
    }
  }
}

/**
 * Builds the Chat Completions codec for one dialect.
 *
 * @since 0.1.0
 */
export const make = (options: ChatCompletionsOptions = {}): WireCodec => {
  const emptyAssistantContent = options.emptyAssistantContent === undefined ? null : options.emptyAssistantContent
  const maxTokensField = options.maxTokensField ?? "max_completion_tokens"
  const { reasoningField, reasoningRequest } = options
  const encode = (
    { messages, model, options: call, stream }: EncodeInput
  ): { readonly body: Json } | { readonly invalid: string } => {
    const invalid = validateRequest(messages, call)
    if (invalid !== undefined) return { invalid }
    const body: Json = {
      ...options.extraBody,
      model,
      messages: messages.map((message) => encodeMessage(message, emptyAssistantContent, reasoningField))
    }
    if (stream) {
      body.stream = true
      body.stream_options = { include_usage: true }
    }
    if (call.maxTokens !== undefined) body[maxTokensField] = call.maxTokens
    if (call.temperature !== undefined) body.temperature = call.temperature
    if (call.topP !== undefined) body.top_p = call.topP
    if (call.stop !== undefined && call.stop.length > 0) body.stop = call.stop
    if (call.tools !== undefined && call.tools.length > 0) {
      body.tools = call.tools.map((tool) => ({
        type: "function",
        function: { name: tool.name, description: tool.description, parameters: tool.parameters }
      }))
    }
    if (call.toolChoice !== undefined) body.tool_choice = encodeToolChoice(call.toolChoice)
    if (call.reasoning !== undefined) encodeReasoning(body, call.reasoning, reasoningRequest)
    const cache = call.promptCache
    if (options.cachePrompt === true) {
      if (cache === false) body.cache_prompt = false
      else if (cache?.slot !== undefined) {
        body.id_slot = cache.slot
        body.cache_prompt = true
      }
    }
    if (options.promptCacheKey === true && cache !== false && cache?.key !== undefined) {
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
    return { body: { ...encoded.body, [maxTokensField]: options.cachePrompt === true ? 0 : 1 } }
  }
  return {
    path: "/chat/completions",
    encode,
    ...(options.cachePrompt === true || options.promptCacheKey === true ? { warm } : {}),
    decodeResponse,
    streamDecoder: (context) => new ChatStreamDecoder(context),
    readError: readErrorBody
  }
}

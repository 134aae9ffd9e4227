/**
 * The Anthropic Messages wire codec (`POST /v1/messages`). Pure functions:
 * messages and options to a JSON body, response JSON or SSE events to
 * `StreamEvent`s.
 *
 * @since 0.1.0
 */
import type { LlmError } from "../errors.js"
import { readErrorBody } from "../internal/errorBody.js"
import { type ErrorContext, fromProviderFailure, quote, quoteLimits, responseError } from "../internal/errorFactory.js"
import { asNumber, asString, isObject, type Json } from "../internal/json.js"
import { constrained, responseFormatProblem } from "../internal/outputSchema.js"
import { warmUpMessages, warmUpProblem } from "../internal/promptCache.js"
import { budgetOf } from "../internal/reasoning.js"
import { badIndex, ToolCallBuffer, toToolCall, uniqueId, unnamed, withoutCalls } from "../internal/toolCalls.js"
import * as Trusted from "../internal/trustedClass.js"
import { thinkingProblem, validateRequest } from "../internal/validate.js"
import type { CompletionOptions, ResponseFormat } from "../Llm.js"
import { type Message, ReasoningPart, type ToolCall, ToolCall as ToolCallClass } from "../Message.js"
import { type FinishReason, StreamEvent, Usage } from "../Reply.js"
import type { DecodedFinish, DecodedReply, EncodeInput, StreamDecoder, WireCodec } from "./WireCodec.js"

/**
 * How the Messages codec fills what a call leaves unset.
 *
 * @since 0.1.0
 */
export interface MessagesOptions {
  /** `max_tokens` when the call sets none; Anthropic requires the field (default 1024). */
  readonly defaultMaxTokens?: number
  /**
   * How a call's response format (structured output) is sent: `tool` (the
   * default, every model): the schema as a tool the model is made to call
   * (`tool_choice: {type: "tool"}`, or `any` beside the call's own tools),
   * whose input becomes the reply's text; `native`: the API's own
   * structured output (`output_config.format`, on the models that have it),
   * which also works with extended thinking. A schema native output cannot
   * take (free-form keys) goes as the tool.
   */
  readonly structuredOutput?: "tool" | "native" | undefined
}

/**
 * The `max_tokens` sent when neither the call nor the codec's options set one.
 *
 * @since 0.1.0
 */
export const defaultMaxTokens = 1024

/** The body fields a call's `providerOptions` may not replace, beyond every codec's. */
const reservedFields = { system: "the system prompt the call sends (send a system message)" } as const

/** One message of the wire history: a role and its content blocks. */
interface WireMessage {
  readonly role: "user" | "assistant"
  readonly content: Array<Json>
}

/**
 * The blocks Anthropic takes back of some reasoning, unchanged: signed
 * thinking and redacted thinking. Parts without a signature (from another
 * backend, or a block cut off before its signature) are dropped: Anthropic
 * refuses a thinking block it cannot verify.
 */
const thinkingBlocks = (parts: ReadonlyArray<ReasoningPart>): Array<Json> => {
  const blocks: Array<Json> = []
  for (const part of parts) {
    if (part.redacted !== undefined) blocks.push({ type: "redacted_thinking", data: part.redacted })
    else if (part.signature) blocks.push({ type: "thinking", thinking: part.text, signature: part.signature })
  }
  return blocks
}

const isToolResult = (block: Json): boolean => block.type === "tool_result"

const isThinking = (block: Json): boolean => block.type === "thinking" || block.type === "redacted_thinking"

/** Moves the blocks `first` picks to the front of `content`, each group in its order. */
const hoist = (content: Array<Json>, first: (block: Json) => boolean): void => {
  const front = content.filter(first)
  if (front.length > 0 && front.length < content.length) {
    const rest = content.filter((block) => !first(block))
    content.splice(0, content.length, ...front, ...rest)
  }
}

/** The content blocks one of our messages becomes, and the wire role that carries them. */
const blocksOf = (message: Exclude<Message, { role: "system" }>): WireMessage => {
  switch (message.role) {
    case "user":
      return { role: "user", content: message.content === "" ? [] : [{ type: "text", text: message.content }] }
    case "assistant": {
      const content: Array<Json> = message.content === "" ? [] : [{ type: "text", text: message.content }]
      for (const call of message.toolCalls) {
        content.push({ type: "tool_use", id: call.id, name: call.name, input: call.arguments })
      }
      // reasoning alone is no message: it goes first in one that has text or calls
      if (content.length > 0 && message.reasoning !== undefined) content.unshift(...thinkingBlocks(message.reasoning))
      return { role: "assistant", content }
    }
    case "tool":
      return {
        role: "user",
        content: [{
          type: "tool_result",
          tool_use_id: message.toolCallId,
          ...(message.content === "" ? {} : { content: message.content }),
          ...(message.isError === true ? { is_error: true } : {})
        }]
      }
  }
}

/** The history as Anthropic takes it, with the blocks the messages asked to end a cache breakpoint at. */
interface History {
  /** One text block per non-empty system message, in order. */
  readonly system: Array<Json>
  readonly messages: Array<WireMessage>
  /** The blocks of messages marked `cache: true` (their last block), in order. */
  readonly marked: Array<Json>
}

/**
 * Builds the system blocks and the alternating user/assistant history:
 * system messages are hoisted, empty messages dropped, consecutive same-role
 * messages merged, tool results put first in their user message. Returns why
 * the history cannot be sent, if it cannot.
 */
const encodeHistory = (messages: ReadonlyArray<Message>): History | string => {
  const system: Array<Json> = []
  const out: Array<WireMessage> = []
  const marked: Array<Json> = []
  for (const message of messages) {
    if (message.role === "system") {
      if (message.content === "") continue
      const block: Json = { type: "text", text: message.content }
      system.push(block)
      if (message.cache === true) marked.push(block)
      continue
    }
    const wire = blocksOf(message)
    if (wire.content.length === 0) continue
    if (message.cache === true) marked.push(wire.content[wire.content.length - 1]!)
    const last = out[out.length - 1]
    if (last !== undefined && last.role === wire.role) { for (const block of wire.content) last.content.push(block) }
    else out.push(wire)
  }
  if (out.length === 0) return "the conversation has no user message with content (Anthropic needs at least one)"
  if (out[0]!.role !== "user") {
    return "the first non-system message is an assistant turn; Anthropic requires the history to start with a user message"
  }
  for (const message of out) {
    if (message.content.length < 2) continue
    // tool_result blocks come before any text in their user message; thinking blocks first in a merged assistant one
    if (message.role === "user") hoist(message.content, isToolResult)
    else hoist(message.content, isThinking)
  }
  return { system, messages: out, marked }
}

/** The most cache breakpoints a request may carry (the API refuses more). */
const maxCacheBreakpoints = 4

/**
 * The blocks that get `cache_control`, at most `maxCacheBreakpoints`: first
 * those the messages asked for (the latest ones, when they ask for more),
 * then, while room is left, the last block before the newest user turn (the
 * stable part of the history), the last system block and the last tool.
 * A later breakpoint covers a longer prefix; the API finds an earlier one's
 * cache entry by itself.
 */
const breakpointsOf = (history: History, tools: ReadonlyArray<Json>): Set<Json> => {
  const chosen = new Set(history.marked.slice(-maxCacheBreakpoints))
  let newestUser = history.messages.length - 1
  while (newestUser >= 0 && history.messages[newestUser]!.role !== "user") newestUser--
  const stable = newestUser > 0 ? history.messages[newestUser - 1]!.content.at(-1) : undefined
  for (const block of [stable, history.system.at(-1), tools.at(-1)]) {
    if (chosen.size >= maxCacheBreakpoints) break
    if (block !== undefined) chosen.add(block)
  }
  return chosen
}

/**
 * The `thinking` field for a call's `reasoning` option, or why the call
 * cannot think. Thinking is off (no field) for `{ enabled: false }` (newer
 * Claude models refuse `type: "disabled"`; without the field the older ones
 * do not think), and for a request that continues a tool step the model took
 * without a thinking block (made on another backend, or without thinking):
 * with thinking on, Anthropic requires that step to start with one.
 */
const thinkingOf = (
  call: EncodeInput["options"],
  messages: ReadonlyArray<WireMessage>
): { readonly type: "enabled"; readonly budget_tokens: number } | string | undefined => {
  const reasoning = call.reasoning
  if (reasoning === undefined || "enabled" in reasoning) return undefined
  const budget = budgetOf(reasoning)
  const problem = thinkingProblem(call, budget)
  if (problem !== undefined) return problem
  let last: WireMessage | undefined
  for (const message of messages) if (message.role === "assistant") last = message
  if (last !== undefined && last.content.some(isToolUse) && !isThinking(last.content[0]!)) return undefined
  return { type: "enabled", budget_tokens: budget }
}

const isToolUse = (block: Json): boolean => block.type === "tool_use"

/** What the output tool is offered as when the response format has no description. */
const outputToolDescription = "Give your answer by calling this tool with it as the input."

const encodeToolChoice = (choice: NonNullable<EncodeInput["options"]["toolChoice"]>): Json => {
  switch (choice) {
    case "auto":
      return { type: "auto" }
    case "required":
      return { type: "any" }
    case "none":
      return { type: "none" }
    default:
      return { type: "tool", name: choice.name }
  }
}

/**
 * Maps an Anthropic `stop_reason` to ours.
 *
 * @since 0.1.0
 */
export const finishReasonFromWire = (reason: string | undefined): FinishReason => {
  switch (reason) {
    case "end_turn":
    case "stop_sequence":
      return "stop"
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length"
    case "tool_use":
      return "tool_calls"
    case "refusal":
      return "content_filter"
    default:
      return "other"
  }
}

/** The four token counters of an Anthropic reply; absent ones stay undefined. */
interface Counters {
  input: number | undefined
  output: number | undefined
  cacheWrite: number | undefined
  cacheRead: number | undefined
}

/** Overwrites `counters` with the fields `usage` carries (the stream's counters are cumulative). */
const readCounters = (counters: Counters, usage: unknown): void => {
  if (!isObject(usage)) return
  const input = asNumber(usage.input_tokens)
  const output = asNumber(usage.output_tokens)
  const cacheWrite = asNumber(usage.cache_creation_input_tokens)
  const cacheRead = asNumber(usage.cache_read_input_tokens)
  if (input !== undefined) counters.input = input
  if (output !== undefined) counters.output = output
  if (cacheWrite !== undefined) counters.cacheWrite = cacheWrite
  if (cacheRead !== undefined) counters.cacheRead = cacheRead
}

/**
 * Our `Usage` from Anthropic's counters: `input_tokens` leaves cached tokens
 * out, so the prompt total is input + cache writes + cache reads.
 */
const usageOf = (counters: Counters): Usage => {
  const inputTokens = (counters.input ?? 0) + (counters.cacheWrite ?? 0) + (counters.cacheRead ?? 0)
  const outputTokens = counters.output ?? 0
  return Trusted.usage({
    inputTokens,
    outputTokens,
    totalTokens: inputTokens + outputTokens,
    ...(counters.cacheRead === undefined ? {} : { cachedInputTokens: counters.cacheRead }),
    ...(counters.cacheWrite === undefined ? {} : { cacheWriteInputTokens: counters.cacheWrite })
  })
}

/** Reads an Anthropic `usage` object. */
const usageFromWire = (usage: unknown): Usage | undefined => {
  if (!isObject(usage)) return undefined
  const counters: Counters = { input: undefined, output: undefined, cacheWrite: undefined, cacheRead: undefined }
  readCounters(counters, usage)
  return usageOf(counters)
}

/** An in-band error (`event: error` in a stream, a `type:"error"` body with HTTP 200) as an `LlmError`. */
const inBandError = (context: ErrorContext, body: unknown): LlmError => {
  const read = readErrorBody(body)
  return fromProviderFailure(context, read)
}

/** A thinking block as a part (undefined when it has neither text nor signature). */
const thinkingPart = (context: ErrorContext, text: string, signature: string | undefined): ReasoningPart | undefined =>
  text === "" && !signature ? undefined : new ReasoningPart({
    text,
    ...(signature ? { signature } : {}),
    provider: context.provider
  }, true)

/** A redacted_thinking block as a part (undefined without its data). */
const redactedPart = (context: ErrorContext, data: unknown): ReasoningPart | undefined => {
  const redacted = asString(data)
  return redacted ? new ReasoningPart({ text: "", redacted, provider: context.provider }, true) : undefined
}

const decodeResponse = (
  body: unknown,
  context: ErrorContext,
  outputTool: string | undefined
): DecodedReply | LlmError => {
  if (!isObject(body)) return responseError(context, "the response is not a JSON object", 200)
  if (body.type === "error") return inBandError(context, body)
  if (!Array.isArray(body.content)) return responseError(context, "the response has no content array", 200)
  const text: Array<string> = []
  const reasoning: Array<string> = []
  const parts: Array<ReasoningPart> = []
  const toolCalls: Array<ToolCall> = []
  const ids = new Set<string>()
  for (let index = 0; index < body.content.length; index++) {
    const block: unknown = body.content[index]
    if (!isObject(block)) continue
    switch (block.type) {
      case "text": {
        const part = asString(block.text)
        if (part) text.push(part)
        break
      }
      case "thinking": {
        const part = thinkingPart(context, asString(block.thinking) ?? "", asString(block.signature))
        if (part !== undefined) parts.push(part)
        if (part?.text) reasoning.push(part.text)
        break
      }
      case "redacted_thinking": {
        const part = redactedPart(context, block.data)
        if (part !== undefined) parts.push(part)
        break
      }
      case "tool_use": {
        const name = asString(block.name)
        if (name !== undefined && name === outputTool) {
          // the output tool's input is the reply's text: the structured value
          text.push(typeof block.input === "string" ? block.input : JSON.stringify(block.input ?? {}))
          break
        }
        const id = uniqueId(ids, asString(block.id) ?? "", `toolu_${index}`)
        if (name === undefined) return unnamed(context, index, id)
        const input = block.input
        const parsed = toToolCall(
          context,
          index,
          id,
          name,
          typeof input === "string" || typeof input === "object" ? input : undefined
        )
        if (!(parsed instanceof ToolCallClass)) return parsed
        toolCalls.push(parsed)
        break
      }
      default:
        // server tool blocks and future types carry nothing we report
        break
    }
  }
  return {
    content: text.join(""),
    ...(reasoning.length > 0 ? { reasoning: reasoning.join("") } : {}),
    reasoningParts: parts,
    toolCalls,
    finishReason: withoutCalls(finishReasonFromWire(asString(body.stop_reason)), toolCalls.length > 0),
    usage: usageFromWire(body.usage) ?? Usage.empty,
    model: asString(body.model) ?? context.model,
    responseId: asString(body.id)
  }
}

class MessagesStreamDecoder implements StreamDecoder {
  done = false
  private readonly toolCalls: ToolCallBuffer
  /** Whether message_start was seen: a second one for another message means a spliced stream. */
  private started = false
  /** Per tool_use block: a non-empty `input` given at its start, used only if no input_json_delta follows. */
  private readonly startInputs: Array<string | undefined> = []
  /** The thinking blocks still open, by index: their text so far and their signature. */
  private readonly thinking = new Map<number, { text: Array<string>; signature: string }>()
  private readonly counters: Counters = {
    input: undefined,
    output: undefined,
    cacheWrite: undefined,
    cacheRead: undefined
  }
  private stopReason: string | undefined
  private model: string | undefined
  private responseId: string | undefined

  /** The blocks of the output tool (a response format sent as a tool): their input streams as text. */
  private readonly outputBlocks = new Set<number>()

  constructor(private readonly context: ErrorContext, private readonly outputTool: string | undefined) {
    this.toolCalls = new ToolCallBuffer(context, "toolu_")
  }

  push(event: string | undefined, data: string, out: Array<StreamEvent>): LlmError | undefined {
    if (this.done) return undefined
    let chunk: unknown
    try {
      chunk = JSON.parse(data)
    } catch {
      if (event === "error") return inBandError(this.context, data)
      return responseError(this.context, `malformed stream event: ${quote(this.context, data, quoteLimits.text)}`)
    }
    if (!isObject(chunk)) {
      if (event === "error") return inBandError(this.context, chunk)
      return responseError(
        this.context,
        `stream event is not a JSON object: ${quote(this.context, data, quoteLimits.text)}`
      )
    }
    const type = asString(chunk.type) ?? event
    if (event === "error" || type === "error") return inBandError(this.context, chunk)
    switch (type) {
      case "message_start": {
        const message = isObject(chunk.message) ? chunk.message : undefined
        if (this.started) return this.restart(message === undefined ? undefined : asString(message.id))
        this.started = true
        if (message !== undefined) {
          if (this.model === undefined) this.model = asString(message.model)
          if (this.responseId === undefined) this.responseId = asString(message.id)
          readCounters(this.counters, message.usage)
        }
        return undefined
      }
      case "content_block_start":
        return this.blockStart(chunk, out)
      case "content_block_delta":
        return this.blockDelta(chunk, out)
      case "content_block_stop": {
        const index = asNumber(chunk.index)
        if (index !== undefined && this.thinking.size > 0) this.closeThinking(index, out)
        const input = index === undefined ? undefined : this.startInputs[index]
        if (input !== undefined) {
          this.startInputs[index!] = undefined
          if (this.outputBlocks.has(index!)) out.push(StreamEvent.TextDelta({ text: input }))
          else this.toolCalls.append(index!, input, out)
        }
        return undefined
      }
      case "message_delta": {
        const delta = chunk.delta
        const reason = isObject(delta) ? asString(delta.stop_reason) : undefined
        if (reason !== undefined) this.stopReason = reason
        readCounters(this.counters, chunk.usage)
        return undefined
      }
      case "message_stop":
        this.done = true
        return undefined
      default:
        // ping and event types added later
        return undefined
    }
  }

  /**
   * A second message_start: a repeat of this message's start is ignored;
   * another message's (or one we cannot tell apart) inside this one is a
   * spliced stream, whose calls and reasoning must not be mixed or run.
   */
  private restart(id: string | undefined): LlmError | undefined {
    if (id !== undefined && id === this.responseId) return undefined
    return responseError(
      this.context,
      `a second message_start (${JSON.stringify(id ?? null)}) arrived inside message ${
        JSON.stringify(this.responseId ?? null)
      }: the stream is spliced`
    )
  }

  private blockStart(chunk: Json, out: Array<StreamEvent>): LlmError | undefined {
    const index = asNumber(chunk.index)
    const block = chunk.content_block
    if (!isObject(block)) return undefined
    if (index === undefined) return block.type === "tool_use" ? badIndex(this.context, chunk.index) : undefined
    switch (block.type) {
      case "text": {
        const text = asString(block.text)
        if (text) out.push(StreamEvent.TextDelta({ text }))
        return undefined
      }
      case "thinking": {
        const text = asString(block.thinking)
        if (text) out.push(StreamEvent.ReasoningDelta({ text }))
        this.thinking.set(index, { text: text ? [text] : [], signature: asString(block.signature) ?? "" })
        return undefined
      }
      case "redacted_thinking": {
        // complete at its start: its data comes whole, it has no deltas
        const part = redactedPart(this.context, block.data)
        if (part !== undefined) out.push(StreamEvent.ReasoningPart({ part }))
        return undefined
      }
      case "tool_use": {
        // the name comes only here: a block without one is refused at once
        const name = asString(block.name)
        if (!name) return unnamed(this.context, index, asString(block.id) || `toolu_${index}`)
        if (this.toolCalls.has(index) || this.outputBlocks.has(index)) {
          return responseError(this.context, `tool_use block ${index} started twice`)
        }
        if (name === this.outputTool) {
          this.outputBlocks.add(index)
          const input = block.input
          if (isObject(input) && Object.keys(input).length > 0) this.startInputs[index] = JSON.stringify(input)
          return undefined
        }
        const error = this.toolCalls.start(index, asString(block.id) ?? "", name, out)
        if (error !== undefined) return error
        const input = block.input
        if (isObject(input) && Object.keys(input).length > 0) this.startInputs[index] = JSON.stringify(input)
        return undefined
      }
      default:
        // server_tool_use and the like: nothing to report
        return undefined
    }
  }

  private blockDelta(chunk: Json, out: Array<StreamEvent>): LlmError | undefined {
    const index = asNumber(chunk.index)
    const delta = chunk.delta
    if (!isObject(delta)) return undefined
    switch (delta.type) {
      case "text_delta": {
        const text = asString(delta.text)
        if (text) out.push(StreamEvent.TextDelta({ text }))
        return undefined
      }
      case "thinking_delta": {
        const text = asString(delta.thinking)
        if (text) {
          out.push(StreamEvent.ReasoningDelta({ text }))
          if (index !== undefined) this.thinking.get(index)?.text.push(text)
        }
        return undefined
      }
      case "signature_delta": {
        // only a thinking block's signature is kept (a text block's is ignored)
        const block = index === undefined ? undefined : this.thinking.get(index)
        const signature = asString(delta.signature)
        if (block !== undefined && signature) block.signature += signature
        return undefined
      }
      case "input_json_delta": {
        // server_tool_use blocks stream input too: only blocks opened as tool_use are ours
        if (index !== undefined && this.outputBlocks.has(index)) {
          const json = asString(delta.partial_json)
          if (json) {
            this.startInputs[index] = undefined
            out.push(StreamEvent.TextDelta({ text: json }))
          }
          return undefined
        }
        if (index === undefined || !this.toolCalls.has(index)) return undefined
        const json = asString(delta.partial_json)
        if (json) {
          this.startInputs[index] = undefined
          this.toolCalls.append(index, json, out)
        }
        return undefined
      }
      default:
        // citations_delta and later delta types
        return undefined
    }
  }

  /** Ends the thinking block at `index`, if one is open: its part, with what it carried. */
  private closeThinking(index: number, out: Array<StreamEvent>): void {
    const block = this.thinking.get(index)
    if (block === undefined) return
    this.thinking.delete(index)
    const part = thinkingPart(this.context, block.text.join(""), block.signature)
    if (part !== undefined) out.push(StreamEvent.ReasoningPart({ part }))
  }

  usage(): Usage | undefined {
    const { cacheRead, cacheWrite, input, output } = this.counters
    return input === undefined && output === undefined && cacheRead === undefined && cacheWrite === undefined
      ? undefined
      : usageOf(this.counters)
  }

  finish(out: Array<StreamEvent>): DecodedFinish | LlmError {
    if (!this.done) {
      return responseError(this.context, "the stream ended before message_stop (the reply is incomplete)")
    }
    // blocks the stream never stopped end with it
    for (const index of [...this.thinking.keys()].sort((a, b) => a - b)) this.closeThinking(index, out)
    const calls = this.toolCalls.complete(out)
    if (!Array.isArray(calls)) return calls
    return {
      finishReason: withoutCalls(finishReasonFromWire(this.stopReason), calls.length > 0),
      usage: usageOf(this.counters),
      model: this.model ?? this.context.model,
      responseId: this.responseId
    }
  }
}

/**
 * Builds the Anthropic Messages codec.
 *
 * @since 0.1.0
 */
export const make = (options: MessagesOptions = {}): WireCodec => {
  const fallbackMaxTokens = options.defaultMaxTokens ?? defaultMaxTokens
  const native = options.structuredOutput === "native"
  /** The native output format of each schema sent (undefined: it has none, the tool is used), worked out once. */
  const nativeFormats = new WeakMap<object, Json | undefined>()
  const nativeFormat = (format: ResponseFormat): Json | undefined => {
    if (!native) return undefined
    if (nativeFormats.has(format.schema)) return nativeFormats.get(format.schema)
    const schema = constrained(format.schema, { allRequired: false })
    const wire = schema === undefined ? undefined : { type: "json_schema", schema }
    nativeFormats.set(format.schema, wire)
    return wire
  }
  /** The name of the output tool a call's reply comes as, if it is sent as one. */
  const outputToolOf = (call: CompletionOptions | undefined): string | undefined => {
    const format = call?.responseFormat
    return format === undefined || nativeFormat(format) !== undefined ? undefined : format.name
  }
  const encode = (
    { messages, model, options: call, stream }: EncodeInput
  ): { readonly body: Json } | { readonly invalid: string } => {
    const invalid = validateRequest(messages, call)
    if (invalid !== undefined) return { invalid }
    const history = encodeHistory(messages)
    if (typeof history === "string") return { invalid: history }
    const tools = (call.tools ?? []).map((tool): Json => ({
      name: tool.name,
      ...(tool.description === "" ? {} : { description: tool.description }),
      input_schema: tool.parameters
    }))
    if (call.toolChoice === "required" && tools.length === 0 && call.responseFormat === undefined) {
      return { invalid: "toolChoice \"required\" needs at least one tool" }
    }
    const format = call.responseFormat
    const formatProblem = format === undefined ? undefined : responseFormatProblem(format)
    if (formatProblem !== undefined) return { invalid: formatProblem }
    const outputFormat = format === undefined ? undefined : nativeFormat(format)
    let toolChoice: Json | undefined = call.toolChoice === undefined ? undefined : encodeToolChoice(call.toolChoice)
    if (format !== undefined && outputFormat === undefined) {
      if (tools.some((tool) => tool.name === format.name)) {
        return {
          invalid: `a tool is named ${JSON.stringify(format.name)}, the name of the response format's output tool`
        }
      }
      if (call.reasoning !== undefined && !("enabled" in call.reasoning)) {
        return {
          invalid:
            "Anthropic cannot make the model call the output tool while it thinks: turn reasoning off for a structured call, or use native structured output (structuredOutput: \"native\")"
        }
      }
      // the model must call a tool: the output tool alone, or any of them beside the call's own (the tool loop)
      if (call.toolChoice === "none") tools.length = 0
      toolChoice = typeof call.toolChoice === "object"
        ? toolChoice
        : tools.length === 0
        ? { type: "tool", name: format.name }
        : { type: "any" }
      tools.push({
        name: format.name,
        description: format.description ?? outputToolDescription,
        input_schema: format.schema
      })
    }
    const cache = call.promptCache
    const breakpoints = cache === false ? new Set<Json>() : breakpointsOf(history, tools)
    const control = cache === false || cache?.ttl === undefined
      ? { type: "ephemeral" }
      : { type: "ephemeral", ttl: cache.ttl }
    for (const block of breakpoints) block.cache_control = control
    const maxTokens = call.maxTokens ?? fallbackMaxTokens
    const thinking = thinkingOf(call, history.messages)
    if (typeof thinking === "string") return { invalid: thinking }
    const body: Json = {
      model,
      // with thinking, the budget comes on top of what the answer may use
      max_tokens: thinking === undefined ? maxTokens : thinking.budget_tokens + maxTokens,
      ...(history.system.length === 0 ? {} : {
        // the block form only when a breakpoint is on the system prompt
        system: history.system.some((block) => breakpoints.has(block))
          ? history.system
          : history.system.map((block) => block.text).join("\n\n")
      }),
      messages: history.messages
    }
    if (thinking !== undefined) body.thinking = thinking
    if (stream) body.stream = true
    if (call.temperature !== undefined) body.temperature = call.temperature
    if (call.topP !== undefined) body.top_p = call.topP
    if (call.stop !== undefined && call.stop.length > 0) body.stop_sequences = call.stop
    if (tools.length > 0) {
      body.tools = tools
      // Anthropic refuses tool_choice without tools; "auto" and "none" mean the same then
      if (toolChoice !== undefined) body.tool_choice = toolChoice
    }
    if (outputFormat !== undefined) body.output_config = { format: outputFormat }
    return { body }
  }
  return {
    path: "/v1/messages",
    encode,
    warm: (input) => {
      const problem = warmUpProblem(input.options)
      if (problem !== undefined) return { invalid: problem }
      const encoded = encode({ ...input, messages: warmUpMessages(input.messages), stream: false })
      if ("invalid" in encoded) return encoded
      // max_tokens 0 writes the cache and generates nothing; it takes neither streaming nor extended thinking
      const { thinking: _thinking, ...body } = encoded.body
      return { body: { ...body, max_tokens: 0 } }
    },
    decodeResponse: (body, context, call) => decodeResponse(body, context, outputToolOf(call)),
    streamDecoder: (context, call) => new MessagesStreamDecoder(context, outputToolOf(call)),
    readError: readErrorBody,
    reservedFields
  }
}

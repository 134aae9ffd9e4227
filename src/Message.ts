/**
 * The conversation sent to a model: system, user, assistant and tool messages,
 * tool definitions and tool calls. All are Schema classes, so a history
 * encodes to JSON and back for free.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A JSON object, as tool arguments and JSON Schemas are.
 *
 * @since 0.1.0
 */
export const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/**
 * The type of a JSON object.
 *
 * @since 0.1.0
 */
export type JsonObject = typeof JsonObject.Type

/**
 * A tool the model may call: its name, what it does, and its parameters as a
 * JSON Schema object.
 *
 * @since 0.1.0
 */
export class ToolDefinition extends Schema.Class<ToolDefinition>("effect-llm/ToolDefinition")({
  name: Schema.String,
  description: Schema.optionalWith(Schema.String, { default: () => "" }),
  parameters: Schema.optionalWith(JsonObject, { default: () => ({ type: "object", properties: {} }) })
}) {}

/**
 * A call the model asked for, with its arguments parsed from JSON.
 *
 * @since 0.1.0
 */
export class ToolCall extends Schema.Class<ToolCall>("effect-llm/ToolCall")({
  id: Schema.String,
  name: Schema.String,
  arguments: JsonObject
}) {}

/**
 * One piece of the model's reasoning, kept with the assistant message it led
 * to, with what its backend needs to accept it back: the text, Anthropic's
 * signature of a thinking block, or the opaque data of a redacted one.
 * Reasoning is never part of a message's `content`.
 *
 * @since 0.1.0
 */
export class ReasoningPart extends Schema.Class<ReasoningPart>("effect-llm/ReasoningPart")({
  /** The reasoning text ("" for a redacted part). */
  text: Schema.String,
  /** Anthropic's signature of a thinking block: without it, Anthropic does not take the block back. */
  signature: Schema.optional(Schema.String),
  /** The data of an Anthropic `redacted_thinking` block (opaque, encrypted). */
  redacted: Schema.optional(Schema.String),
  /**
   * OpenRouter's `reasoning_details` of the reply (typed entries: text with
   * its signature, summaries, encrypted data), sent back as they came so
   * that the upstream model takes its reasoning back across tool calls.
   */
  details: Schema.optional(Schema.Array(JsonObject)),
  /** The backend that produced it ("anthropic", "local", ...). */
  provider: Schema.optional(Schema.String)
}) {}

/**
 * The fields of a reasoning part, as plain data.
 *
 * @since 0.1.0
 */
export interface ReasoningPartInput {
  readonly text: string
  readonly signature?: string | undefined
  readonly redacted?: string | undefined
  readonly details?: ReadonlyArray<JsonObject> | undefined
  readonly provider?: string | undefined
}

/**
 * The instructions that frame the conversation.
 *
 * @since 0.1.0
 */
export class SystemMessage extends Schema.Class<SystemMessage>("effect-llm/SystemMessage")({
  role: Schema.tag("system"),
  content: Schema.String,
  /** Ends a prompt-cache breakpoint: the prefix up to and including this message is cached (Anthropic `cache_control`). */
  cache: Schema.optional(Schema.Boolean)
}) {}

/**
 * What the user said.
 *
 * @since 0.1.0
 */
export class UserMessage extends Schema.Class<UserMessage>("effect-llm/UserMessage")({
  role: Schema.tag("user"),
  content: Schema.String,
  /** Ends a prompt-cache breakpoint: the prefix up to and including this message is cached (Anthropic `cache_control`). */
  cache: Schema.optional(Schema.Boolean)
}) {}

/**
 * What the model answered, with the tools it asked to call and the reasoning
 * that led to it, so a tool round-trip can be replayed to the provider.
 *
 * @since 0.1.0
 */
export class AssistantMessage extends Schema.Class<AssistantMessage>("effect-llm/AssistantMessage")({
  role: Schema.tag("assistant"),
  content: Schema.String,
  toolCalls: Schema.optionalWith(Schema.Array(ToolCall), { default: () => [] }),
  /** The reasoning of the reply, in order; absent when there was none. */
  reasoning: Schema.optional(Schema.Array(ReasoningPart)),
  /** True when the reply was cut short by the listener (barge-in). */
  interrupted: Schema.optional(Schema.Boolean),
  /** Ends a prompt-cache breakpoint: the prefix up to and including this message is cached (Anthropic `cache_control`). */
  cache: Schema.optional(Schema.Boolean)
}) {}

/**
 * The result of one tool call, answering the assistant message that asked for it.
 *
 * @since 0.1.0
 */
export class ToolMessage extends Schema.Class<ToolMessage>("effect-llm/ToolMessage")({
  role: Schema.tag("tool"),
  toolCallId: Schema.String,
  name: Schema.String,
  content: Schema.String,
  /** The tool failed; `content` explains how (Anthropic's `is_error`). */
  isError: Schema.optional(Schema.Boolean),
  /** Ends a prompt-cache breakpoint: the prefix up to and including this message is cached (Anthropic `cache_control`). */
  cache: Schema.optional(Schema.Boolean)
}) {}

/**
 * Any message of a conversation, told apart by `role`.
 *
 * @since 0.1.0
 */
export const Message = Schema.Union(SystemMessage, UserMessage, AssistantMessage, ToolMessage)

/**
 * Any message of a conversation.
 *
 * @since 0.1.0
 */
export type Message = typeof Message.Type

/**
 * The fields of a tool call, as plain data.
 *
 * @since 0.1.0
 */
export interface ToolCallInput {
  readonly id: string
  readonly name: string
  readonly arguments: JsonObject
}

/**
 * What a message may ask of the prompt cache: `cache: true` ends a breakpoint at it.
 *
 * @since 0.1.0
 */
export interface CacheOptions {
  readonly cache?: boolean | undefined
}

/** The `cache` field of a message built with `options`: present only when asked for. */
const cacheField = (options: CacheOptions | undefined): { readonly cache?: boolean } =>
  options?.cache === undefined ? {} : { cache: options.cache }

/**
 * Builds a system message (`{ cache: true }`: a prompt-cache breakpoint ends at it).
 *
 * @since 0.1.0
 */
export const system = (content: string, options?: CacheOptions): SystemMessage =>
  new SystemMessage({ content, ...cacheField(options) })

/**
 * Builds a user message (`{ cache: true }`: a prompt-cache breakpoint ends at it).
 *
 * @since 0.1.0
 */
export const user = (content: string, options?: CacheOptions): UserMessage =>
  new UserMessage({ content, ...cacheField(options) })

/** A reasoning part from plain data, without the fields given as undefined. */
const reasoningPart = (part: ReasoningPartInput): ReasoningPart =>
  part instanceof ReasoningPart ? part : new ReasoningPart({
    text: part.text,
    ...(part.signature === undefined ? {} : { signature: part.signature }),
    ...(part.redacted === undefined ? {} : { redacted: part.redacted }),
    ...(part.details === undefined ? {} : { details: part.details }),
    ...(part.provider === undefined ? {} : { provider: part.provider })
  })

/**
 * Builds an assistant message, optionally with the tool calls it made and the
 * reasoning that led to it.
 *
 * @since 0.1.0
 */
export const assistant = (
  content: string,
  toolCalls: ReadonlyArray<ToolCallInput> = [],
  options: { readonly reasoning?: ReadonlyArray<ReasoningPartInput> | undefined } = {}
): AssistantMessage => {
  const reasoning = options.reasoning === undefined || options.reasoning.length === 0
    ? undefined
    : options.reasoning.map(reasoningPart)
  return new AssistantMessage({
    content,
    toolCalls: toolCalls.map((call) => (call instanceof ToolCall ? call : new ToolCall(call))),
    ...(reasoning === undefined ? {} : { reasoning })
  })
}

/**
 * Builds a tool result message answering the call `toolCallId`.
 *
 * @since 0.1.0
 */
export const tool = (options: {
  readonly toolCallId: string
  readonly name: string
  readonly content: string
  readonly isError?: boolean
  readonly cache?: boolean
}): ToolMessage => new ToolMessage(options)

/**
 * Builds a tool definition from plain data.
 *
 * @since 0.1.0
 */
export const toolDefinition = (options: {
  readonly name: string
  readonly description?: string
  readonly parameters?: JsonObject
}): ToolDefinition => new ToolDefinition(options)

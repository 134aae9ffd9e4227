/**
 * The provider-neutral model interface: the `Llm` service, its options and the
 * `CompletionResult` every backend returns.
 *
 * @since 0.1.0
 */
import * as Channel from "effect/Channel"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { LlmError } from "./errors.js"
import type { Message, ToolDefinition } from "./Message.js"
import { ToolCall } from "./Message.js"
import { type StreamEvent, textDeltas } from "./Stream.js"

/** Why the model stopped. */
export const FinishReason = Schema.Literal("stop", "length", "tool_calls", "content_filter", "other")

/** @since 0.1.0 */
export type FinishReason = typeof FinishReason.Type

/** Tokens consumed by one call, as the provider reported them. */
export class Usage extends Schema.Class<Usage>("effect-llm/Usage")({
  inputTokens: Schema.Number,
  outputTokens: Schema.Number,
  totalTokens: Schema.Number,
  /** Prompt tokens served from the provider's cache. */
  cachedInputTokens: Schema.optional(Schema.Number),
  /** Prompt tokens written to the provider's cache (Anthropic). */
  cacheWriteInputTokens: Schema.optional(Schema.Number),
  /** Output tokens spent on reasoning. */
  reasoningTokens: Schema.optional(Schema.Number)
}) {
  /** No tokens: what a provider that reports nothing gets. */
  static readonly empty = new Usage({ inputTokens: 0, outputTokens: 0, totalTokens: 0 })
}

/** Where a result came from and what it cost to get. */
export class ResponseMetadata extends Schema.Class<ResponseMetadata>("effect-llm/ResponseMetadata")({
  /** The backend that answered ("openai", "anthropic", "local", ...). */
  provider: Schema.String,
  /** The provider's id of the response (`chatcmpl-...`, `msg_...`). */
  responseId: Schema.optional(Schema.String),
  /** The request id from the response headers. */
  requestId: Schema.optional(Schema.String),
  /** HTTP attempts made, retries included. */
  attempts: Schema.Number,
  /** Milliseconds from the call to the last byte. */
  latencyMillis: Schema.Number,
  /** Milliseconds from the call to the first content event (streams). */
  firstTokenMillis: Schema.optional(Schema.Number),
  /** Backends of a fallback chain that did not answer: skipped (breaker open) or failed with `error`. */
  fallbacks: Schema.optional(Schema.Array(Schema.Struct({
    provider: Schema.String,
    skipped: Schema.optional(Schema.Boolean),
    error: Schema.optional(LlmError)
  })))
}) {}

/** A model's complete reply. */
export class CompletionResult extends Schema.Class<CompletionResult>("effect-llm/CompletionResult")({
  content: Schema.String,
  model: Schema.String,
  finishReason: FinishReason,
  toolCalls: Schema.Array(ToolCall),
  usage: Usage,
  /** The model's reasoning, kept apart from `content`. */
  reasoning: Schema.optional(Schema.String),
  metadata: ResponseMetadata
}) {
  /** Total tokens used (the seed's `tokens_used`). */
  get tokensUsed(): number {
    return this.usage.totalTokens
  }

  /** Whether the model asked for tools. */
  get hasToolCalls(): boolean {
    return this.toolCalls.length > 0
  }
}

/** Which tool the model may or must call. */
export type ToolChoice = "auto" | "none" | "required" | { readonly name: string }

/** Per-call options; unset ones take the layer's defaults. */
export interface CompletionOptions {
  readonly temperature?: number | undefined
  readonly maxTokens?: number | undefined
  readonly topP?: number | undefined
  readonly stop?: ReadonlyArray<string> | undefined
  readonly tools?: ReadonlyArray<ToolDefinition> | undefined
  readonly toolChoice?: ToolChoice | undefined
  /** Deadline for one attempt, start to last byte. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Deadline for the first content event of a stream. */
  readonly firstTokenTimeout?: Duration.DurationInput | undefined
  /** Deadline between two content events of a stream. */
  readonly idleTimeout?: Duration.DurationInput | undefined
}

/**
 * A language model: one backend, or several composed with fallback.
 *
 * @since 0.1.0
 */
export class Llm extends Context.Tag("effect-llm/Llm")<Llm, Llm.Service>() {}

/** @since 0.1.0 */
export declare namespace Llm {
  /** What every backend implements. */
  export interface Service {
    /** The backend's name ("openai", "anthropic", "local", "openrouter", ...). */
    readonly provider: string
    /** The default model. */
    readonly model: string
    /** Asks for a complete reply. */
    readonly complete: (
      messages: ReadonlyArray<Message>,
      options?: CompletionOptions
    ) => Effect.Effect<CompletionResult, LlmError>
    /** Streams the reply as it is produced. Interrupting the consumer aborts the request. */
    readonly stream: (
      messages: ReadonlyArray<Message>,
      options?: CompletionOptions
    ) => Stream.Stream<StreamEvent, LlmError>
  }
}

/** Asks the `Llm` in context for a complete reply. */
export const complete = (
  messages: ReadonlyArray<Message>,
  options?: CompletionOptions
): Effect.Effect<CompletionResult, LlmError, Llm> => Effect.flatMap(Llm, (llm) => llm.complete(messages, options))

/**
 * The stream `f` makes of the `Llm` in context: the backend's own channel,
 * not inside `Stream.unwrap`'s extra concatMap (measurably faster first token).
 */
const fromLlm = <A>(f: (llm: Llm.Service) => Stream.Stream<A, LlmError>): Stream.Stream<A, LlmError, Llm> =>
  Stream.fromChannel(Channel.unwrap(Effect.map(Llm, (llm) => Stream.toChannel(f(llm)))))

/** Streams the reply of the `Llm` in context as events. */
export const stream = (
  messages: ReadonlyArray<Message>,
  options?: CompletionOptions
): Stream.Stream<StreamEvent, LlmError, Llm> => fromLlm((llm) => llm.stream(messages, options))

/** Streams only the text of the reply (the seed's `stream_complete`). */
export const streamText = (
  messages: ReadonlyArray<Message>,
  options?: CompletionOptions
): Stream.Stream<string, LlmError, Llm> =>
  // `textDeltas` on the backend's own stream, which may hand over its text without a stage
  fromLlm((llm) => textDeltas(llm.stream(messages, options)))

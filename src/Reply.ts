/**
 * The data of a model's reply, complete or streamed: `FinishReason`, `Usage`,
 * `ResponseMetadata`, `CompletionResult` and the `StreamEvent` union. A leaf
 * module: the service (`Llm.ts`) and the stream operators (`Stream.ts`) both
 * import it, and it imports neither.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Schema from "effect/Schema"
import { LlmError } from "./errors.js"
import {
  assistant,
  type AssistantMessage,
  ReasoningPart,
  ToolCall,
  type ToolCallInput,
  type ToolMessage
} from "./Message.js"
import { Usage } from "./Usage.js"

/**
 * Why the model stopped.
 *
 * @since 0.1.0
 */
export const FinishReason = Schema.Literal("stop", "length", "tool_calls", "content_filter", "other")

/**
 * Why the model stopped.
 *
 * @since 0.1.0
 */
export type FinishReason = typeof FinishReason.Type

export {
  /** @since 0.1.0 */
  Usage
} from "./Usage.js"

/**
 * Where a result came from and what it cost to get.
 *
 * @since 0.1.0
 */
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
  /**
   * What the server measured itself, when it says (llama-server's `timings`):
   * prompt processing beside generation, so server-side prompt time can be
   * read next to `firstTokenMillis`. Each figure only when reported.
   */
  timings: Schema.optional(Schema.Struct({
    /** Prompt tokens processed (those not served from the cache). */
    promptTokens: Schema.optional(Schema.Number),
    /** Milliseconds spent processing the prompt. */
    promptMillis: Schema.optional(Schema.Number),
    promptTokensPerSecond: Schema.optional(Schema.Number),
    /** Tokens generated. */
    generationTokens: Schema.optional(Schema.Number),
    /** Milliseconds spent generating. */
    generationMillis: Schema.optional(Schema.Number),
    generationTokensPerSecond: Schema.optional(Schema.Number),
    /** Prompt tokens reused from the server's cache. */
    cachedPromptTokens: Schema.optional(Schema.Number)
  })),
  /** Backends of a fallback chain that did not answer: skipped (breaker open) or failed with `error`. */
  fallbacks: Schema.optional(Schema.Array(Schema.Struct({
    provider: Schema.String,
    skipped: Schema.optional(Schema.Boolean),
    error: Schema.optional(LlmError)
  }))),
  /**
   * Tokens billed for attempts that failed before this reply (a retried
   * attempt, a backend a fallback chain moved past), as their providers
   * reported them before failing, summed; absent when none reported any.
   * `Usage.billed` adds it to the reply's own `usage`.
   */
  failedUsage: Schema.optional(Usage),
  /**
   * A spoken turn's voice latencies (`Conversation.speak`), in milliseconds
   * from the turn's start: to its first text, its first chunk handed to the
   * sink and its first audio (the sink's `started`); each only when it
   * happened. `outputTokens` sums the usage of the turn's steps.
   */
  voice: Schema.optional(Schema.Struct({
    firstTokenMillis: Schema.optional(Schema.Number),
    firstChunkMillis: Schema.optional(Schema.Number),
    firstAudioMillis: Schema.optional(Schema.Number),
    outputTokens: Schema.Number,
    interrupted: Schema.Boolean
  }))
}) {}

/**
 * A model's complete reply.
 *
 * @since 0.1.0
 */
export class CompletionResult extends Schema.Class<CompletionResult>("effect-llm/CompletionResult")({
  content: Schema.String,
  model: Schema.String,
  finishReason: FinishReason,
  toolCalls: Schema.Array(ToolCall),
  usage: Usage,
  /** The model's reasoning, kept apart from `content`: the text of `reasoningParts`, joined. */
  reasoning: Schema.optional(Schema.String),
  /** The reasoning as its backend gave it (signatures, redacted blocks), to send back with the message. */
  reasoningParts: Schema.optional(Schema.Array(ReasoningPart)),
  metadata: ResponseMetadata
}) {
  /** Total tokens used (`usage.totalTokens`: input plus output). */
  get tokensUsed(): number {
    return this.usage.totalTokens
  }

  /** The reply's cost in US dollars (`usage.cost`), when known. */
  get cost(): number | undefined {
    return this.usage.cost
  }

  /** Whether the model asked for tools. */
  get hasToolCalls(): boolean {
    return this.toolCalls.length > 0
  }

  /**
   * The assistant message of this reply, for the history: its text, its tool
   * calls (or `toolCalls`, e.g. under the names a tool loop resolved) and its
   * reasoning parts.
   */
  toMessage(options: { readonly toolCalls?: ReadonlyArray<ToolCallInput> | undefined } = {}): AssistantMessage {
    return assistant(this.content, options.toolCalls ?? this.toolCalls, { reasoning: this.reasoningParts })
  }
}

/**
 * One event of a streamed reply. Content events (`TextDelta`,
 * `ReasoningDelta`, `ReasoningPart`, `ToolCallStart`, `ToolCallDelta`,
 * `ToolCall`) arrive in order; `Finish` is always last.
 *
 * The tool loop (`Toolkit.stream`, so `Conversation`'s streamed turns) adds
 * progress events between its steps, for the application to fill pauses:
 * `ToolExecutionStart` and `ToolExecutionEnd` around each tool call it
 * runs, and `Silence` when a step's model call is slow to start. They are
 * not content; a backend's own stream never has them.
 *
 * `ReasoningPart` closes a block of reasoning that its backend needs back as
 * it was (Anthropic's signed thinking block, or a redacted block, which has
 * no text and so no `ReasoningDelta`): its text was already streamed by the
 * block's `ReasoningDelta`s. Reasoning deltas not closed by a part (Chat
 * Completions reasoning) make one part of their own when the stream is
 * collected. Like every content event, a `ReasoningPart` commits the stream.
 *
 * @since 0.1.0
 */
export type StreamEvent = Data.TaggedEnum<{
  /** A piece of the reply's text. */
  TextDelta: { readonly text: string }
  /** A piece of the model's reasoning, never part of the text. */
  ReasoningDelta: { readonly text: string }
  /** A complete block of reasoning with what its backend needs to take it back (signature, redacted data). */
  ReasoningPart: { readonly part: ReasoningPart }
  /** The model started a tool call. */
  ToolCallStart: { readonly index: number; readonly id: string; readonly name: string }
  /** A fragment of a tool call's JSON arguments; not parseable on its own. */
  ToolCallDelta: { readonly index: number; readonly argumentsDelta: string }
  /** A complete tool call with strictly parsed arguments. */
  ToolCall: { readonly index: number; readonly toolCall: ToolCall }
  /** Tool loop only: the handler of a call the model asked for is about to run. */
  ToolExecutionStart: { readonly toolCall: ToolCall }
  /**
   * Tool loop only: a call's result was made (an error result too),
   * `durationMillis` after its `ToolExecutionStart`. Emitted as each call
   * ends, while the step's other calls may still run.
   */
  ToolExecutionEnd: { readonly toolCall: ToolCall; readonly result: ToolMessage; readonly durationMillis: number }
  /**
   * Tool loop only: step `step`'s model call had produced no content event
   * `waitedMillis` after it started (`RunOptions.silenceAfter`); at most once
   * per step. Nothing is cancelled: the reply follows when it comes.
   */
  Silence: { readonly step: number; readonly waitedMillis: number }
  /** The reply ended normally. */
  Finish: {
    readonly finishReason: FinishReason
    readonly usage: Usage
    readonly model: string
    readonly metadata: ResponseMetadata
  }
}>

/**
 * Constructors and matchers of `StreamEvent`. The same as
 * `Data.taggedEnum<StreamEvent>()`, as a plain object: `taggedEnum` answers
 * every property read through a Proxy that builds a new constructor each
 * time, a cost paid for every event of every stream.
 *
 * @since 0.1.0
 */
export const StreamEvent: Data.TaggedEnum.Constructor<StreamEvent> = (() => {
  const tagged = Data.taggedEnum<StreamEvent>()
  return {
    TextDelta: Data.tagged<Extract<StreamEvent, { _tag: "TextDelta" }>>("TextDelta"),
    ReasoningDelta: Data.tagged<Extract<StreamEvent, { _tag: "ReasoningDelta" }>>("ReasoningDelta"),
    ReasoningPart: Data.tagged<Extract<StreamEvent, { _tag: "ReasoningPart" }>>("ReasoningPart"),
    ToolCallStart: Data.tagged<Extract<StreamEvent, { _tag: "ToolCallStart" }>>("ToolCallStart"),
    ToolCallDelta: Data.tagged<Extract<StreamEvent, { _tag: "ToolCallDelta" }>>("ToolCallDelta"),
    ToolCall: Data.tagged<Extract<StreamEvent, { _tag: "ToolCall" }>>("ToolCall"),
    ToolExecutionStart: Data.tagged<Extract<StreamEvent, { _tag: "ToolExecutionStart" }>>("ToolExecutionStart"),
    ToolExecutionEnd: Data.tagged<Extract<StreamEvent, { _tag: "ToolExecutionEnd" }>>("ToolExecutionEnd"),
    Silence: Data.tagged<Extract<StreamEvent, { _tag: "Silence" }>>("Silence"),
    Finish: Data.tagged<Extract<StreamEvent, { _tag: "Finish" }>>("Finish"),
    $is: tagged.$is,
    $match: tagged.$match
  }
})()

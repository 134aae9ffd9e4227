/**
 * The provider-neutral model interface: the `Llm` service, its options and the
 * `CompletionResult` every backend returns.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import type { LlmError, LlmOutputError } from "./errors.js"
import * as Projection from "./internal/projection.js"
import * as StreamOps from "./internal/streamOps.js"
import * as Structured from "./internal/structured.js"
import type { JsonObject, Message, ToolDefinition } from "./Message.js"
import type { CompletionResult, StreamEvent } from "./Reply.js"
import { textDeltas } from "./Stream.js"
import type { ObjectOptions, ObjectResult, ObjectStreamEvent, ObjectStreamOptions } from "./StructuredOutput.js"

export {
  /** @since 0.1.0 */
  CompletionResult,
  /** @since 0.1.0 */
  FinishReason,
  /** @since 0.1.0 */
  ResponseMetadata,
  /** @since 0.1.0 */
  Usage
} from "./Reply.js"

/**
 * Which tool the model may or must call.
 *
 * @since 0.1.0
 */
export type ToolChoice = "auto" | "none" | "required" | { readonly name: string }

/**
 * How a call uses the backend's prompt cache. Each backend reads the fields
 * it has a use for and ignores the others; Anthropic's cache breakpoints are
 * placed whenever this is not `false`.
 *
 * @since 0.1.0
 */
export interface PromptCacheOption {
  /**
   * OpenAI's `prompt_cache_key`: requests with the same key and prefix are
   * routed to the same cache (a conversation's id, typically).
   */
  readonly key?: string | undefined
  /**
   * llama-server's slot (`id_slot`, with `cache_prompt`): a conversation
   * that keeps to one slot reuses that slot's KV cache on every turn.
   */
  readonly slot?: number | undefined
  /** Anthropic's cache lifetime for the breakpoints: `"5m"` (the API's default) or `"1h"`. */
  readonly ttl?: "5m" | "1h" | undefined
}

/**
 * How much the model may reason before it answers: an effort, a budget of
 * reasoning tokens, or none where the backend can turn reasoning off. Each
 * backend maps it to its own field (OpenAI and local servers
 * `reasoning_effort`, OpenRouter `reasoning`, Anthropic `thinking`).
 *
 * @since 0.1.0
 */
export type ReasoningOption =
  | { readonly effort: "low" | "medium" | "high" }
  | { readonly budgetTokens: number }
  | { readonly enabled: false }

/**
 * A reply that must be one JSON value matching a JSON Schema (structured
 * output), sent each backend's strongest way: OpenAI and OpenRouter
 * `response_format` `json_schema` in strict mode (the schema in the form
 * strict mode takes; OpenRouter also asks to be routed only to providers
 * that honour it); local servers `json_schema`, or `json_object` with the
 * schema in the system prompt, as their dialect says; Anthropic a forced
 * output tool whose input becomes the reply's text (or its native output
 * format, `structuredOutput: "native"`). `Llm.generateObject` and
 * `Llm.streamObject` set it from a Schema and decode the reply.
 *
 * @since 0.1.0
 */
export interface ResponseFormat {
  /** The value's name (OpenAI's `json_schema.name`, Anthropic's tool): letters, digits, `_` and `-`, at most 64. */
  readonly name: string
  /** What the value is, for the model. */
  readonly description?: string | undefined
  /** The JSON Schema, with `"type": "object"` at its root. */
  readonly schema: JsonObject
}

/**
 * Per-call options; unset ones take the layer's defaults.
 *
 * @since 0.1.0
 */
export interface CompletionOptions {
  /**
   * Another model of the same backend for this call (default: the layer's
   * model). Results, errors and spans name it. Through `Fallback` it goes to
   * the primary (first) backend only; the others use their own model.
   */
  readonly model?: string | undefined
  /**
   * Extra request-body fields by backend name (`local`, `openai`,
   * `openrouter`, `anthropic`, or a custom provider's name): each backend
   * sends its own entry, merged over its layer's `providerOptions`, then
   * into the body it encoded, key by key (objects merged, anything else
   * replaced). JSON only; an entry that would replace the model, the
   * messages or the stream flag (or Anthropic's `system`) is refused.
   *
   * @example
   * { local: { cache_prompt: true, id_slot: 2 }, openrouter: { provider: { order: ["groq"] } } }
   */
  readonly providerOptions?: Readonly<Record<string, JsonObject>> | undefined
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
  /**
   * The prompt cache: a key, a slot, a lifetime (see `PromptCacheOption`);
   * `false` sends no cache hint at all (and asks llama-server not to reuse its cache).
   */
  readonly promptCache?: PromptCacheOption | false | undefined
  /** How much the model may reason (see `ReasoningOption`). */
  readonly reasoning?: ReasoningOption | undefined
  /** The reply must be a JSON value of this schema (see `ResponseFormat`); its text is that JSON. */
  readonly responseFormat?: ResponseFormat | undefined
}

/**
 * A language model: one backend, or several composed with fallback.
 *
 * @since 0.1.0
 */
export class Llm extends Context.Tag("effect-llm/Llm")<Llm, Llm.Service>() {}

/**
 * The types of the `Llm` service.
 *
 * @since 0.1.0
 */
export declare namespace Llm {
  /**
   * What every backend implements.
   *
   * @since 0.1.0
   */
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
    /**
     * Sends `messages` and the options' tools for the backend to cache as a
     * prompt prefix, generating nothing (or one token where the backend needs
     * one), so the next call that starts with them answers sooner. Absent
     * where the backend has no prompt cache to warm.
     */
    readonly warm?:
      | ((messages: ReadonlyArray<Message>, options?: CompletionOptions) => Effect.Effect<CompletionResult, LlmError>)
      | undefined
  }
}

/**
 * `f` of the `Llm` in context, read from the fiber's context in one step
 * (`Effect.flatMap(Llm, f)` takes three: the tag, its lookup, the continuation).
 */
const withLlm = <A, E, R>(f: (llm: Llm.Service) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R | Llm> =>
  Effect.withFiberRuntime((fiber) => f(Context.unsafeGet(fiber.currentContext, Llm)))

/**
 * Asks the `Llm` in context for a complete reply.
 *
 * @since 0.1.0
 */
export const complete = (
  messages: ReadonlyArray<Message>,
  options?: CompletionOptions
): Effect.Effect<CompletionResult, LlmError, Llm> => withLlm((llm) => llm.complete(messages, options))

/**
 * Streams the reply of the `Llm` in context as events.
 *
 * @since 0.1.0
 */
export const stream = (
  messages: ReadonlyArray<Message>,
  options?: CompletionOptions
): Stream.Stream<StreamEvent, LlmError, Llm> =>
  // keeping the backend's projection: `textDeltas`, `sentences` and the layers on top add no stage to it
  Projection.fromContext((context: Context.Context<Llm>) => Context.get(context, Llm).stream(messages, options))

/**
 * Streams only the text of the reply.
 *
 * @since 0.1.0
 */
export const streamText = (
  messages: ReadonlyArray<Message>,
  options?: CompletionOptions
): Stream.Stream<string, LlmError, Llm> =>
  // the backend's own stream selects its text where it decodes it, without a stage
  textDeltas(stream(messages, options))

/**
 * Asks the `Llm` in context for a value of `schema`: the call carries the
 * Schema's JSON Schema as its response format (see `ResponseFormat`), and the
 * reply's text is decoded by the Schema. A reply that is not a value of it
 * fails with `LlmOutputError` (its raw text and the Schema's formatted parse
 * error; `refused` for a refusal, `truncated` at the output limit), after
 * `repair` more calls that send the error back to the model.
 *
 * @since 0.1.0
 */
export const generateObject = <A, I>(
  messages: ReadonlyArray<Message>,
  schema: Schema.Schema<A, I, never>,
  options: ObjectOptions = {}
): Effect.Effect<ObjectResult<A>, LlmError | LlmOutputError, Llm> =>
  withLlm((llm) => Structured.generate(llm, messages, schema, options))

/**
 * Streams a value of `schema` from the `Llm` in context: partial values as
 * the JSON arrives (each one only when the value changed, each extending the
 * one before), or each complete element of an array with `elements`, and
 * last `Done` with the value decoded by the Schema (or `LlmOutputError`, as
 * for `generateObject`; no repair). Interrupting the consumer aborts the request.
 *
 * @since 0.1.0
 */
export const streamObject = <A, I>(
  messages: ReadonlyArray<Message>,
  schema: Schema.Schema<A, I, never>,
  options: ObjectStreamOptions = {}
): Stream.Stream<ObjectStreamEvent<A, I>, LlmError | LlmOutputError, Llm> =>
  StreamOps.fromContext((context: Context.Context<Llm>) => {
    const llm = Context.get(context, Llm)
    return Structured.streamWith(Structured.contextOf(llm), (call) => llm.stream(messages, call), schema, options)
  })

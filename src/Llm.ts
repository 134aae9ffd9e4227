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
import * as Stream from "effect/Stream"
import type { LlmError } from "./errors.js"
import type { Message, ToolDefinition } from "./Message.js"
import type { CompletionResult, StreamEvent } from "./Reply.js"
import { textDeltas } from "./Stream.js"

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
 * Per-call options; unset ones take the layer's defaults.
 *
 * @since 0.1.0
 */
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
  /**
   * The prompt cache: a key, a slot, a lifetime (see `PromptCacheOption`);
   * `false` sends no cache hint at all (and asks llama-server not to reuse its cache).
   */
  readonly promptCache?: PromptCacheOption | false | undefined
  /** How much the model may reason (see `ReasoningOption`). */
  readonly reasoning?: ReasoningOption | undefined
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
 * Asks the `Llm` in context for a complete reply.
 *
 * @since 0.1.0
 */
export const complete = (
  messages: ReadonlyArray<Message>,
  options?: CompletionOptions
): Effect.Effect<CompletionResult, LlmError, Llm> => Effect.flatMap(Llm, (llm) => llm.complete(messages, options))

/**
 * The stream `f` makes of the `Llm` in context: the backend's own channel,
 * not inside `Stream.unwrap`'s extra concatMap, so the first token has one stage fewer to cross.
 */
const fromLlm = <A>(f: (llm: Llm.Service) => Stream.Stream<A, LlmError>): Stream.Stream<A, LlmError, Llm> =>
  Stream.fromChannel(Channel.unwrap(Effect.map(Llm, (llm) => Stream.toChannel(f(llm)))))

/**
 * Streams the reply of the `Llm` in context as events.
 *
 * @since 0.1.0
 */
export const stream = (
  messages: ReadonlyArray<Message>,
  options?: CompletionOptions
): Stream.Stream<StreamEvent, LlmError, Llm> => fromLlm((llm) => llm.stream(messages, options))

/**
 * Streams only the text of the reply.
 *
 * @since 0.1.0
 */
export const streamText = (
  messages: ReadonlyArray<Message>,
  options?: CompletionOptions
): Stream.Stream<string, LlmError, Llm> =>
  // `textDeltas` on the backend's own stream, which may hand over its text without a stage
  fromLlm((llm) => textDeltas(llm.stream(messages, options)))

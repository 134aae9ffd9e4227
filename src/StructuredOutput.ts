/**
 * Structured output: a reply that is a value of a Schema, not prose. The
 * options of `Llm.generateObject` and `Llm.streamObject`, the `ObjectResult`
 * they give and the events of an object stream. How each backend is asked
 * for the value is in `Llm.ResponseFormat`.
 *
 * @since 0.1.0
 */
import type { CompletionOptions } from "./Llm.js"
import type { AssistantMessage, ReasoningPart } from "./Message.js"
import type { CompletionResult, FinishReason, ResponseMetadata, Usage } from "./Reply.js"

/**
 * What every structured call takes beyond the completion options.
 *
 * @since 0.1.0
 */
export interface ObjectCallOptions extends Omit<CompletionOptions, "responseFormat"> {
  /**
   * The name the backend is given for the value (OpenAI's `json_schema.name`,
   * Anthropic's output tool): letters, digits, `_` and `-`, at most 64.
   * Default: the Schema's `identifier` annotation when it is such a name,
   * else `output`.
   */
  readonly name?: string | undefined
  /** What the value is, for the model (sent where the backend takes it). */
  readonly description?: string | undefined
}

/**
 * The options of `Llm.generateObject`.
 *
 * @since 0.1.0
 */
export interface ObjectOptions extends ObjectCallOptions {
  /**
   * How many times a reply that is not a value of the Schema is sent back to
   * the model with what is wrong with it, for it to answer again (default 0).
   * A refused or truncated reply is not repaired.
   */
  readonly repair?: number | undefined
}

/**
 * The options of `Llm.streamObject`.
 *
 * @since 0.1.0
 */
export interface ObjectStreamOptions extends ObjectCallOptions {
  /**
   * For an array Schema: stream each element once, decoded by the element's
   * Schema, as soon as it is complete (`Element` events), instead of partial
   * values of the whole array.
   */
  readonly elements?: boolean | undefined
}

/**
 * A value received in part: objects with some of their properties, arrays
 * with some of their elements, each of them partial too.
 *
 * @since 0.1.0
 */
export type DeepPartial<A> = A extends ReadonlyArray<infer E> ? ReadonlyArray<DeepPartial<E>>
  : A extends object ? { readonly [K in keyof A]?: DeepPartial<A[K]> }
  : A

/**
 * The element type of an array type.
 *
 * @since 0.1.0
 */
export type ElementOf<A> = A extends ReadonlyArray<infer E> ? E : never

/**
 * A value of the Schema, with the reply it was read from.
 *
 * @since 0.1.0
 */
export class ObjectResult<A> {
  /** The value, decoded by the Schema. */
  readonly value: A
  /** The reply the value was read from (the last one, after repairs). */
  readonly completion: CompletionResult
  /** The tokens of every model call made for the value, repairs included. */
  readonly usage: Usage
  /** Model calls made: the first and each repair. */
  readonly attempts: number

  constructor(
    fields: {
      readonly value: A
      readonly completion: CompletionResult
      readonly usage: Usage
      readonly attempts: number
    }
  ) {
    this.value = fields.value
    this.completion = fields.completion
    this.usage = fields.usage
    this.attempts = fields.attempts
  }

  /** The reply's raw text: the JSON the value was decoded from. */
  get text(): string {
    return this.completion.content
  }

  /** Why the model stopped. */
  get finishReason(): FinishReason {
    return this.completion.finishReason
  }

  /** The model that answered. */
  get model(): string {
    return this.completion.model
  }

  /** Where the reply came from and what it cost to get. */
  get metadata(): ResponseMetadata {
    return this.completion.metadata
  }

  /** The model's reasoning, when it reasoned. */
  get reasoning(): string | undefined {
    return this.completion.reasoning
  }

  /** The reasoning as its backend gave it. */
  get reasoningParts(): ReadonlyArray<ReasoningPart> | undefined {
    return this.completion.reasoningParts
  }

  /** The assistant message of the reply, for the history (its text is the JSON). */
  toMessage(): AssistantMessage {
    return this.completion.toMessage()
  }
}

/**
 * One event of an object stream: a partial value whenever the value received
 * so far changed (`Partial`), each complete element of an array with the
 * `elements` option (`Element`), and last the value decoded by the Schema
 * (`Done`). A partial is of the Schema's encoded side `I` (what the JSON
 * holds: the same as `A` for plain structs); each one extends the one before
 * (strings grow, arrays and objects gain members, numbers and literals appear
 * only once complete), and the last is the whole value.
 *
 * @since 0.1.0
 */
export type ObjectStreamEvent<A, I = A> =
  | { readonly _tag: "Partial"; readonly partial: DeepPartial<I> }
  | { readonly _tag: "Element"; readonly index: number; readonly element: ElementOf<A> }
  | { readonly _tag: "Done"; readonly result: ObjectResult<A> }

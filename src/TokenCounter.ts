/**
 * Counting tokens for context budgets: a pluggable service, with a fast
 * estimate by default.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import { type CountTokens, estimateTokens } from "./Context.js"

/**
 * Counts the tokens of a message. The `Conversation` service prunes with it
 * when it is provided, and with `estimateTokens` otherwise.
 */
export class TokenCounter extends Context.Tag("effect-llm/TokenCounter")<
  TokenCounter,
  { readonly count: CountTokens }
>() {}

/** The fast estimate (about four characters a token). */
export const estimate: Layer.Layer<TokenCounter> = Layer.succeed(TokenCounter, { count: estimateTokens })

/** A counter from any function, e.g. an exact tokenizer for your model. */
export const layer = (count: CountTokens): Layer.Layer<TokenCounter> => Layer.succeed(TokenCounter, { count })

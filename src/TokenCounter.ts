/**
 * Counting tokens for context budgets: a pluggable service, with a fast
 * estimate by default.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type CountTokens, estimateTokens } from "./Context.js"

/**
 * Counts the tokens of a message. The `Conversation` service prunes with it
 * when it is provided, and with `estimateTokens` otherwise.
 *
 * @since 0.1.0
 */
export class TokenCounter extends Context.Tag("effect-llm/TokenCounter")<
  TokenCounter,
  { readonly count: CountTokens }
>() {}

/**
 * The fast estimate (about four characters a token).
 *
 * @since 0.1.0
 */
export const estimate: Layer.Layer<TokenCounter> = Layer.succeed(TokenCounter, { count: estimateTokens })

/**
 * A counter from any function, e.g. an exact tokenizer for your model.
 *
 * @since 0.1.0
 */
export const layer = (count: CountTokens): Layer.Layer<TokenCounter> => Layer.succeed(TokenCounter, { count })

/**
 * An exact counter for OpenAI models (gpt-4o, gpt-4.1, o-series, gpt-oss:
 * the `o200k_base` encoding, from `gpt-tokenizer`), plus the chat format's
 * framing of about three tokens a message. The encoding is loaded when the
 * layer is built, not when the library is imported.
 *
 * @since 0.1.0
 */
export const openAi: Layer.Layer<TokenCounter> = Layer.effect(
  TokenCounter,
  Effect.map(Effect.promise(() => import("gpt-tokenizer/encoding/o200k_base")), ({ countTokens }) => ({
    count: (message) => {
      let tokens = 3 + countTokens(message.content)
      if (message.role === "assistant") {
        for (const call of message.toolCalls) {
          tokens += 3 + countTokens(call.name) + countTokens(JSON.stringify(call.arguments))
        }
      }
      return tokens
    }
  }))
)

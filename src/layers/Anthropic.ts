/**
 * The Anthropic backend (Messages at `https://api.anthropic.com/v1/messages`).
 *
 * @since 0.1.0
 */
import * as Redacted from "effect/Redacted"
import * as Messages from "../codecs/AnthropicMessages.js"
import * as Provider from "../Provider.js"

/**
 * Options of the Anthropic layer.
 *
 * @since 0.1.0
 */
export interface AnthropicOptions extends Provider.ProviderOptions {
  /** `anthropic-beta` header: a comma-separated list of beta features. */
  readonly anthropicBeta?: string | undefined
  /**
   * How structured output is asked for: `tool` (default, every model: a
   * forced output tool) or `native` (`output_config.format`, on the models
   * that have it; see `AnthropicMessages.MessagesOptions`).
   */
  readonly structuredOutput?: "tool" | "native" | undefined
}

/**
 * The Anthropic defaults: `maxTokens` is the codec's `max_tokens` when a call sets none.
 *
 * @since 0.1.0
 */
export const defaults = {
  model: "claude-sonnet-4-20250514",
  baseUrl: "https://api.anthropic.com",
  timeout: "60 seconds",
  maxTokens: Messages.defaultMaxTokens,
  apiKeyEnv: "ANTHROPIC_API_KEY",
  version: "2023-06-01"
} as const

/**
 * The Anthropic provider, declared once: the key goes in `x-api-key`.
 *
 * @since 0.1.0
 */
export const provider = Provider.make<AnthropicOptions, typeof defaults>({
  name: "anthropic",
  defaults,
  apiKeyRequired: true,
  codec: ({ structuredOutput }) => Messages.make({ structuredOutput }),
  keyHeaders: (apiKey) => ({ "x-api-key": Redacted.value(apiKey) }),
  headers: { "anthropic-version": defaults.version },
  optionHeaders: { anthropicBeta: "anthropic-beta" }
})

/**
 * Builds the Anthropic `Llm` service (`make`), as a layer (`layer`), or
 * configured from the environment (`layerConfig`: the key from
 * `ANTHROPIC_API_KEY` as `Redacted`, the model from `LLM_ANTHROPIC_MODEL` and
 * the base URL from `LLM_ANTHROPIC_BASE_URL` when set; `options` fill in the
 * rest).
 *
 * @since 0.1.0
 */
export const { layer, layerConfig, make } = provider

/**
 * The Anthropic backend (Messages at `https://api.anthropic.com/v1/messages`).
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { Llm } from "../Llm.js"
import * as HttpProvider from "./HttpProvider.js"
import * as Messages from "./Messages.js"

/** Options of the Anthropic layer. */
export interface AnthropicOptions extends HttpProvider.ProviderOptions {
  /** `anthropic-beta` header: a comma-separated list of beta features. */
  readonly anthropicBeta?: string | undefined
}

/** The seed's defaults. */
export const defaults = {
  model: "claude-sonnet-4-20250514",
  baseUrl: "https://api.anthropic.com",
  timeout: "60 seconds",
  maxTokens: 1024,
  apiKeyEnv: "ANTHROPIC_API_KEY",
  version: "2023-06-01"
} as const

const codec = Messages.make({ defaultMaxTokens: defaults.maxTokens })

/** Builds the Anthropic `Llm` service. */
export const make = (options: AnthropicOptions = {}): Effect.Effect<Llm.Service> =>
  HttpProvider.make(HttpProvider.configFrom(options, {
    provider: "anthropic",
    model: defaults.model,
    baseUrl: defaults.baseUrl,
    timeout: defaults.timeout,
    codec,
    apiKeyEnv: defaults.apiKeyEnv,
    headers: {
      ...(options.apiKey === undefined ? {} : { "x-api-key": Redacted.value(options.apiKey) }),
      "anthropic-version": defaults.version,
      ...(options.anthropicBeta === undefined ? {} : { "anthropic-beta": options.anthropicBeta })
    }
  }))

/** The Anthropic backend as a layer. */
export const layer = (options: AnthropicOptions = {}): Layer.Layer<Llm> =>
  Layer.effect(Llm, make(options))

/**
 * The Anthropic backend configured from the environment: the key from
 * `ANTHROPIC_API_KEY` (as `Redacted`), the model from `ANTHROPIC_MODEL` and the
 * base URL from `ANTHROPIC_BASE_URL` when set; `options` fill in the rest.
 */
export const layerConfig = (
  options: AnthropicOptions = {}
): Layer.Layer<Llm, ConfigError.ConfigError> =>
  HttpProvider.layerConfig(
    { apiKey: defaults.apiKeyEnv, apiKeyRequired: true, model: "ANTHROPIC_MODEL", baseUrl: "ANTHROPIC_BASE_URL" },
    layer,
    options
  )

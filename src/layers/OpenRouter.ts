/**
 * The OpenRouter backend: Chat Completions at `https://openrouter.ai/api/v1`,
 * with its attribution headers, keep-alive comments and in-band error chunks.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Llm } from "../Llm.js"
import * as ChatCompletions from "./ChatCompletions.js"
import * as HttpProvider from "./HttpProvider.js"

/** Options of the OpenRouter layer. */
export interface OpenRouterOptions extends HttpProvider.ProviderOptions {
  /** Your app's URL, sent as `HTTP-Referer` for attribution. */
  readonly referer?: string | undefined
  /** Your app's name, sent as `X-Title`. */
  readonly title?: string | undefined
  /** Fields merged into every request body, e.g. `{ provider: { order: [...] } }` routing. */
  readonly extraBody?: Readonly<Record<string, unknown>> | undefined
}

/** The seed's defaults. */
export const defaults = {
  model: "openai/gpt-4o",
  baseUrl: "https://openrouter.ai/api/v1",
  timeout: "60 seconds",
  apiKeyEnv: "OPENROUTER_API_KEY"
} as const

/** Builds the OpenRouter `Llm` service. */
export const make = (options: OpenRouterOptions = {}): Effect.Effect<Llm.Service> =>
  HttpProvider.make(HttpProvider.configFrom(options, {
    provider: "openrouter",
    model: defaults.model,
    baseUrl: defaults.baseUrl,
    timeout: defaults.timeout,
    codec: ChatCompletions.make({
      emptyAssistantContent: null,
      maxTokensField: "max_tokens",
      ...(options.extraBody === undefined ? {} : { extraBody: options.extraBody })
    }),
    apiKeyEnv: defaults.apiKeyEnv,
    headers: {
      ...HttpProvider.bearer(options.apiKey),
      ...(options.referer === undefined ? {} : { "http-referer": options.referer }),
      ...(options.title === undefined ? {} : { "x-title": options.title })
    }
  }))

/** The OpenRouter backend as a layer. */
export const layer = (options: OpenRouterOptions = {}): Layer.Layer<Llm> =>
  Layer.effect(Llm, make(options))

/**
 * The OpenRouter backend configured from the environment: the key from
 * `OPENROUTER_API_KEY` (as `Redacted`), `OPENROUTER_MODEL` and
 * `OPENROUTER_BASE_URL` when set; `options` fill in the rest.
 */
export const layerConfig = (
  options: OpenRouterOptions = {}
): Layer.Layer<Llm, ConfigError.ConfigError> =>
  HttpProvider.layerConfig(
    { apiKey: defaults.apiKeyEnv, apiKeyRequired: true, model: "OPENROUTER_MODEL", baseUrl: "OPENROUTER_BASE_URL" },
    layer,
    options
  )

/**
 * The OpenAI backend (Chat Completions at `https://api.openai.com/v1`).
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Llm } from "../Llm.js"
import * as ChatCompletions from "./ChatCompletions.js"
import * as HttpProvider from "./HttpProvider.js"

/** Options of the OpenAI layer. */
export interface OpenAiOptions extends HttpProvider.ProviderOptions {
  /** `OpenAI-Organization` header. */
  readonly organization?: string | undefined
  /** `OpenAI-Project` header. */
  readonly project?: string | undefined
}

/** The seed's defaults. */
export const defaults = {
  model: "gpt-4o",
  baseUrl: "https://api.openai.com/v1",
  timeout: "60 seconds",
  apiKeyEnv: "OPENAI_API_KEY"
} as const

const codec = ChatCompletions.make({ emptyAssistantContent: null, maxTokensField: "max_completion_tokens" })

/** Builds the OpenAI `Llm` service. */
export const make = (options: OpenAiOptions = {}): Effect.Effect<Llm.Service> =>
  HttpProvider.make(HttpProvider.configFrom(options, {
    provider: "openai",
    model: defaults.model,
    baseUrl: defaults.baseUrl,
    timeout: defaults.timeout,
    codec,
    apiKeyEnv: defaults.apiKeyEnv,
    headers: {
      ...HttpProvider.bearer(options.apiKey),
      ...(options.organization === undefined ? {} : { "openai-organization": options.organization }),
      ...(options.project === undefined ? {} : { "openai-project": options.project })
    }
  }))

/** The OpenAI backend as a layer. */
export const layer = (options: OpenAiOptions = {}): Layer.Layer<Llm> =>
  Layer.effect(Llm, make(options))

/**
 * The OpenAI backend configured from the environment: the key from
 * `OPENAI_API_KEY` (as `Redacted`), the model from `OPENAI_MODEL` and the base
 * URL from `OPENAI_BASE_URL` when set; `options` fill in the rest.
 */
export const layerConfig = (
  options: OpenAiOptions = {}
): Layer.Layer<Llm, ConfigError.ConfigError> =>
  HttpProvider.layerConfig(
    { apiKey: defaults.apiKeyEnv, apiKeyRequired: true, model: "OPENAI_MODEL", baseUrl: "OPENAI_BASE_URL" },
    layer,
    options
  )

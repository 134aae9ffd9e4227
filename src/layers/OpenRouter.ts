/**
 * The OpenRouter backend: Chat Completions at `https://openrouter.ai/api/v1`,
 * with its attribution headers, keep-alive comments and in-band error chunks.
 *
 * @since 0.1.0
 */
import * as ChatCompletions from "../codecs/ChatCompletions.js"
import * as Provider from "../Provider.js"

/**
 * Options of the OpenRouter layer.
 *
 * @since 0.1.0
 */
export interface OpenRouterOptions extends Provider.ProviderOptions {
  /** Your app's URL, sent as `HTTP-Referer` for attribution. */
  readonly referer?: string | undefined
  /** Your app's name, sent as `X-Title`. */
  readonly title?: string | undefined
  /** Fields merged into every request body, e.g. `{ provider: { order: [...] } }` routing. */
  readonly extraBody?: Readonly<Record<string, unknown>> | undefined
}

/**
 * The OpenRouter provider, declared once: `extraBody` is merged into its codec's bodies.
 *
 * @since 0.1.0
 */
export const provider = Provider.make<OpenRouterOptions>({
  name: "openrouter",
  defaults: {
    model: "openai/gpt-4o",
    baseUrl: "https://openrouter.ai/api/v1",
    timeout: "60 seconds",
    apiKeyEnv: "OPENROUTER_API_KEY"
  },
  apiKeyRequired: true,
  codec: ({ extraBody }) => ChatCompletions.make({ dialect: ChatCompletions.dialects.openrouter, extraBody }),
  optionHeaders: { referer: "http-referer", title: "x-title" }
})

/**
 * The OpenRouter defaults.
 *
 * @since 0.1.0
 */
export const defaults = provider.defaults

/**
 * Builds the OpenRouter `Llm` service (`make`), as a layer (`layer`), or
 * configured from the environment (`layerConfig`: the key from
 * `OPENROUTER_API_KEY` as `Redacted`, the model from `LLM_OPENROUTER_MODEL`
 * and the base URL from `LLM_OPENROUTER_BASE_URL` when set; `options` fill in
 * the rest).
 *
 * @since 0.1.0
 */
export const { layer, layerConfig, make } = provider

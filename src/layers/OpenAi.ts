/**
 * The OpenAI backend (Chat Completions at `https://api.openai.com/v1`).
 *
 * @since 0.1.0
 */
import * as ChatCompletions from "../codecs/ChatCompletions.js"
import * as Provider from "../Provider.js"

/**
 * Options of the OpenAI layer.
 *
 * @since 0.1.0
 */
export interface OpenAiOptions extends Provider.ProviderOptions {
  /** `OpenAI-Organization` header. */
  readonly organization?: string | undefined
  /** `OpenAI-Project` header. */
  readonly project?: string | undefined
}

/**
 * The OpenAI provider, declared once.
 *
 * @since 0.1.0
 */
export const provider = Provider.make<OpenAiOptions>({
  name: "openai",
  defaults: {
    model: "gpt-4o",
    baseUrl: "https://api.openai.com/v1",
    timeout: "60 seconds",
    apiKeyEnv: "OPENAI_API_KEY"
  },
  apiKeyRequired: true,
  codec: ChatCompletions.make({ dialect: ChatCompletions.dialects.openai }),
  optionHeaders: { organization: "openai-organization", project: "openai-project" }
})

/**
 * The OpenAI defaults.
 *
 * @since 0.1.0
 */
export const defaults = provider.defaults

/**
 * Builds the OpenAI `Llm` service (`make`), as a layer (`layer`), or
 * configured from the environment (`layerConfig`: the key from
 * `OPENAI_API_KEY` as `Redacted`, the model from `LLM_OPENAI_MODEL` and the
 * base URL from `LLM_OPENAI_BASE_URL` when set; `options` fill in the rest).
 *
 * @since 0.1.0
 */
export const { layer, layerConfig, make } = provider

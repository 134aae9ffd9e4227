/**
 * The provider kit: a provider is declared once (its name, wire codec,
 * defaults, headers from the key and the environment variable of its key) and
 * gets `make`, `layer` and `layerConfig` from it. Every built-in backend is
 * such a declaration; a custom provider for another HTTP API is one too.
 *
 * @example
 * import { ChatCompletions, Provider } from "effect-llm"
 *
 * const Acme = Provider.make<Provider.ProviderOptions & { readonly team?: string }>({
 *   name: "acme",
 *   codec: ChatCompletions.make(),
 *   defaults: { model: "acme-1", baseUrl: "https://api.acme.test/v1", timeout: "60 seconds", apiKeyEnv: "ACME_API_KEY" },
 *   apiKeyRequired: true,
 *   optionHeaders: { team: "x-acme-team" }
 * })
 * // Acme.layer({ apiKey }), or Acme.layerConfig() reading ACME_API_KEY, LLM_ACME_MODEL, LLM_ACME_BASE_URL
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { WireCodec } from "./codecs/WireCodec.js"
import * as HttpProvider from "./internal/httpProvider.js"
import { Llm, type PromptCacheOption, type ReasoningOption } from "./Llm.js"
import type { JsonObject } from "./Message.js"
import type * as Retry from "./Retry.js"

/**
 * A backend's rate limits: budgets of requests and of tokens a minute,
 * applied before each request is sent. A bucket holds a minute's budget and
 * refills continuously; a call waits for its share within its deadline (the
 * first-token deadline of a stream, the total one of a whole reply), or fails
 * at once with `LlmRateLimitError` (`limit` set, `retryAfter` the wait it
 * would need) when the wait would pass it. Tokens are reserved as an
 * estimate before sending (a quarter of the request's characters, plus its
 * `maxTokens`) and settled with the usage the reply reports.
 *
 * The budgets are shared by every process whose `SharedState` is the same
 * Redis, per backend (the name, by default provider and model) and API key;
 * with state in memory, they are this layer's.
 *
 * @since 0.1.0
 */
export interface RateLimitOptions {
  /** Requests sent a minute, across every process sharing the budget. */
  readonly requestsPerMinute?: number | undefined
  /** Tokens (prompt and reply) a minute, across every process sharing the budget. */
  readonly tokensPerMinute?: number | undefined
  /** The name the budget is shared under (default: provider and model, `openai:gpt-4o`); layers with one name share one budget. */
  readonly name?: string | undefined
}

/**
 * The options every provider layer accepts.
 *
 * @since 0.1.0
 */
export interface ProviderOptions {
  /** The model to use unless a call says otherwise. */
  readonly model?: string | undefined
  /** The provider's base URL, as its docs give it. */
  readonly baseUrl?: string | undefined
  /** The API key, kept `Redacted` so it never reaches a log or an error. */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /** Deadline for one attempt, start to last byte. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Deadline for a stream's first content event. */
  readonly firstTokenTimeout?: Duration.DurationInput | undefined
  /** Deadline between two content events of a stream. */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Default output limit. */
  readonly maxTokens?: number | undefined
  /** Default sampling temperature. */
  readonly temperature?: number | undefined
  /** Default prompt cache use (`false`: no cache hint unless a call asks for one). */
  readonly promptCache?: PromptCacheOption | false | undefined
  /** Default reasoning of every call (see `ReasoningOption`). */
  readonly reasoning?: ReasoningOption | undefined
  readonly retry?: Retry.RetryOptions | undefined
  /** The largest response body accepted, streamed or not (default 32 MiB). */
  readonly maxResponseBytes?: number | undefined
  /** Send the key over plain http to a host that is not loopback (default false). */
  readonly allowInsecureHttp?: boolean | undefined
  /**
   * Extra request-body fields sent on every call of this backend (JSON,
   * e.g. `{ cache_prompt: true }`); a call's `providerOptions` entry for the
   * backend is merged over them, key by key.
   */
  readonly providerOptions?: JsonObject | undefined
  /** Budgets of requests and tokens a minute, shared through the `SharedState` in context (see `RateLimitOptions`). */
  readonly rateLimit?: RateLimitOptions | undefined
}

/**
 * The default idle timeout between content events of a stream.
 *
 * @since 0.1.0
 */
export const defaultIdleTimeout: Duration.DurationInput = "30 seconds"

/**
 * `Authorization: Bearer <key>` when a key is given, no header otherwise.
 *
 * @since 0.1.0
 */
export const bearer = (apiKey: Redacted.Redacted<string> | undefined): Record<string, string> =>
  apiKey === undefined ? {} : { authorization: `Bearer ${Redacted.value(apiKey)}` }

/**
 * The variables that override a backend's model and base URL:
 * `LLM_<BACKEND>_MODEL` and `LLM_<BACKEND>_BASE_URL`, `<BACKEND>` being its
 * name in upper case. `layerConfig` and `LlmConfig` both read these.
 *
 * @since 0.1.0
 */
export const overrideEnv = (backend: string): { readonly model: string; readonly baseUrl: string } => {
  const upper = backend.toUpperCase()
  return { model: `LLM_${upper}_MODEL`, baseUrl: `LLM_${upper}_BASE_URL` }
}

/**
 * The environment variables a provider reads, from its declaration.
 *
 * @since 0.1.0
 */
export interface EnvNames {
  /** The variable holding the API key (read as `Redacted`). */
  readonly apiKey: string
  /** Whether the provider fails without a key (cloud) or runs without one (local). */
  readonly apiKeyRequired: boolean
  /** The variable overriding the model. */
  readonly model: string
  /** The variable overriding the base URL. */
  readonly baseUrl: string
}

/**
 * A provider's defaults, used where its options set nothing.
 *
 * @since 0.1.0
 */
export interface ProviderDefaults {
  readonly model: string
  readonly baseUrl: string
  /** Deadline for one attempt. */
  readonly timeout: Duration.DurationInput
  /** The variable the key is read from, named in authentication errors. */
  readonly apiKeyEnv: string
}

/**
 * The options of `Options` that are text, beyond the ones every provider
 * has: the ones a header can be set from.
 *
 * @since 0.1.0
 */
export type TextOptions<Options> = Exclude<
  { [K in keyof Options]-?: Options[K] extends string | undefined ? K : never }[keyof Options],
  keyof ProviderOptions
>

/**
 * The header a key is sent in.
 *
 * @since 0.1.0
 */
export type KeyHeaders = { readonly authorization: string } | { readonly "x-api-key": string }

/**
 * What declares a provider: everything that differs from one HTTP backend
 * to the next.
 *
 * @since 0.1.0
 */
export interface Declaration<Options extends ProviderOptions, Defaults extends ProviderDefaults> {
  /** The provider's name in results, errors and spans, and the `<BACKEND>` of its variables. */
  readonly name: string
  readonly defaults: Defaults
  /** Whether `layerConfig` fails without a key. */
  readonly apiKeyRequired: boolean
  /** The wire codec, or the one for these options. */
  readonly codec: WireCodec | ((options: Options) => WireCodec)
  /**
   * The header that carries the key (default: `Authorization: Bearer <key>`):
   * `authorization` or `x-api-key`, the headers the HTTP machinery knows as
   * credentials (redacted from every error, never sent over plain http to a
   * remote host).
   */
  readonly keyHeaders?: ((apiKey: Redacted.Redacted<string>) => KeyHeaders) | undefined
  /** Headers sent with every request, whatever the options. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** The header each of the provider's own text options is sent as, when set. */
  readonly optionHeaders?: { readonly [K in TextOptions<Options>]?: string } | undefined
  /** The URL the codec's path is appended to, from the base URL as given (default: as given). */
  readonly endpoint?: ((baseUrl: string) => string) | undefined
}

/**
 * A declared provider: its `make`, `layer` and `layerConfig`.
 *
 * @since 0.1.0
 */
export interface Provider<Options extends ProviderOptions, Defaults extends ProviderDefaults = ProviderDefaults> {
  readonly name: string
  readonly defaults: Defaults
  /** The variables `layerConfig` reads. */
  readonly env: EnvNames
  /** Builds the provider's `Llm` service. */
  readonly make: (options?: Options) => Effect.Effect<Llm.Service>
  /** The provider as a layer. */
  readonly layer: (options?: Options) => Layer.Layer<Llm>
  /**
   * The provider configured from the environment: the key (as `Redacted`),
   * the model and the base URL from `env` when set; `options` fill in the rest.
   */
  readonly layerConfig: (options?: Options) => Layer.Layer<Llm, ConfigError.ConfigError>
}

/** The headers of a request: the key's, the fixed ones, then those of the options that are set. */
const headersOf = <Options extends ProviderOptions>(
  declaration: Declaration<Options, ProviderDefaults>,
  options: Options
): Record<string, string> => {
  const headers: Record<string, string> = options.apiKey === undefined
    ? {}
    : { ...(declaration.keyHeaders ?? bearer)(options.apiKey) }
  Object.assign(headers, declaration.headers)
  const optionHeaders: Readonly<Record<string, string | undefined>> = declaration.optionHeaders ?? {}
  for (const option in optionHeaders) {
    const value: unknown = options[option as keyof Options]
    if (typeof value === "string") headers[optionHeaders[option]!] = value
  }
  return headers
}

/** Fills a `ProviderConfig` from a provider's declaration and its options. */
const configOf = <Options extends ProviderOptions>(
  declaration: Declaration<Options, ProviderDefaults>,
  options: Options
): HttpProvider.ProviderConfig => {
  const baseUrl = options.baseUrl ?? declaration.defaults.baseUrl
  return {
    provider: declaration.name,
    model: options.model ?? declaration.defaults.model,
    baseUrl: declaration.endpoint === undefined ? baseUrl : declaration.endpoint(baseUrl),
    codec: typeof declaration.codec === "function" ? declaration.codec(options) : declaration.codec,
    headers: headersOf(declaration, options),
    apiKeyEnv: declaration.defaults.apiKeyEnv,
    timeout: options.timeout ?? declaration.defaults.timeout,
    firstTokenTimeout: options.firstTokenTimeout,
    idleTimeout: options.idleTimeout ?? defaultIdleTimeout,
    defaults: {
      maxTokens: options.maxTokens,
      temperature: options.temperature,
      promptCache: options.promptCache,
      reasoning: options.reasoning
    },
    retry: options.retry,
    maxResponseBytes: options.maxResponseBytes,
    allowInsecureHttp: options.allowInsecureHttp,
    providerOptions: options.providerOptions,
    rateLimit: options.rateLimit
  }
}

/**
 * Reads a provider's variables through Effect's `Config`: the key (as
 * `Redacted`; a missing required key fails naming it), the model and the
 * base URL, each only when set.
 *
 * @since 0.1.0
 */
export const readEnv = (env: EnvNames): Config.Config<ProviderOptions> =>
  Config.map(
    Config.all({
      apiKey: env.apiKeyRequired
        ? Config.map(Config.redacted(env.apiKey), Option.some)
        : Config.option(Config.redacted(env.apiKey)),
      model: Config.option(Config.string(env.model)),
      baseUrl: Config.option(Config.string(env.baseUrl))
    }),
    ({ apiKey, baseUrl, model }) => ({
      ...(Option.isSome(apiKey) ? { apiKey: apiKey.value } : {}),
      ...(Option.isSome(model) ? { model: model.value } : {}),
      ...(Option.isSome(baseUrl) ? { baseUrl: baseUrl.value } : {})
    })
  )

/**
 * Declares a provider and gives it `make`, `layer` and `layerConfig`.
 *
 * @since 0.1.0
 */
export const make = <
  Options extends ProviderOptions = ProviderOptions,
  Defaults extends ProviderDefaults = ProviderDefaults
>(
  declaration: Declaration<Options, Defaults>
): Provider<Options, Defaults> => {
  const env: EnvNames = {
    apiKey: declaration.defaults.apiKeyEnv,
    apiKeyRequired: declaration.apiKeyRequired,
    ...overrideEnv(declaration.name)
  }
  const make = (options: Options = {} as Options) => HttpProvider.make(configOf(declaration, options))
  const layer = (options: Options = {} as Options) => Layer.effect(Llm, make(options))
  const layerConfig = (options: Options = {} as Options) =>
    Layer.unwrapEffect(Effect.map(readEnv(env), (read) => layer({ ...options, ...read })))
  return { name: declaration.name, defaults: declaration.defaults, env, make, layer, layerConfig }
}

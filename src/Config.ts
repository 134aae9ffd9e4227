/**
 * The `Llm` layer picked from configuration: the seed's config shape (a plain
 * object, a YAML or JSON file, environment overrides), validated into one
 * clear error, and turned into a provider layer or a fallback chain.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { readFileSync } from "node:fs"
import { parse as parseYaml } from "yaml"
import { displayUrl, durationProblem, headerValueProblem, parseBaseUrl } from "./internal/validate.js"
import * as Anthropic from "./layers/Anthropic.js"
import * as Fallback from "./layers/Fallback.js"
import { isInsecureRemote } from "./layers/HttpProvider.js"
import * as Local from "./layers/Local.js"
import * as OpenAi from "./layers/OpenAi.js"
import * as OpenRouter from "./layers/OpenRouter.js"
import type { Llm } from "./Llm.js"
import { overrideEnv, type Provider, type ProviderOptions } from "./Provider.js"
import type { RetryOptions } from "./Retry.js"

/** One backend's section, keys as the seed writes them. */
export interface BackendSection {
  readonly base_url?: string
  readonly model?: string
  /** Seconds (a number) or a duration ("90 seconds"). */
  readonly timeout?: number | string
  readonly first_token_timeout?: number | string
  readonly idle_timeout?: number | string
  readonly max_tokens?: number
  readonly temperature?: number
  /** The environment variable holding the API key. */
  readonly api_key_env?: string
  /** Send the key over plain http to a host that is not loopback (off by default). */
  readonly allow_insecure_http?: boolean
  /** Anything else a custom backend needs. */
  readonly [key: string]: unknown
}

/** The `llm` section of the seed's configuration. */
export interface LlmSection {
  /** local_gpt_oss | local | openai | anthropic | openrouter | a registered name. */
  readonly backend: string
  /** Backends to try, in order, after the primary. */
  readonly fallback?: ReadonlyArray<string>
  readonly retry?: {
    readonly max_retries?: number
    readonly initial_delay?: number | string
    readonly max_delay?: number | string
    readonly max_retry_after?: number | string
  }
  readonly circuit_breaker?: { readonly failure_threshold?: number; readonly cooldown?: number | string }
  readonly [backend: string]: unknown
}

/** A whole configuration: `{ llm: {...} }`, as the seed's files hold it. */
export interface LlmConfigInput {
  readonly llm: LlmSection
}

/** What a custom backend's factory gets. */
export interface BackendContext {
  readonly name: string
  readonly section: BackendSection
  /** The key from the section's `api_key_env`, when set and present. */
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  /** The shared retry settings. */
  readonly retry: RetryOptions
}

/** Builds the layer of a backend from its section. */
export type BackendFactory = (context: BackendContext) => Layer.Layer<Llm, ConfigError.ConfigError>

/**
 * Custom backends by name (the seed's `register_provider`), as a value passed
 * to `layerFrom` or as this service; no global mutable state.
 */
export class BackendRegistry extends Context.Tag("effect-llm/BackendRegistry")<
  BackendRegistry,
  ReadonlyMap<string, BackendFactory>
>() {}

/** A registry layer from a record of factories. */
export const registry = (factories: Readonly<Record<string, BackendFactory>>): Layer.Layer<BackendRegistry> =>
  Layer.succeed(BackendRegistry, new Map(Object.entries(factories)))

interface Builtin {
  /** The provider's declaration: its layer and the variable of its key. */
  readonly provider: Provider<ProviderOptions>
  /** How an open breaker checks the backend is back without spending a call. */
  readonly probe?: (options: ProviderOptions) => Effect.Effect<unknown, unknown>
}

/** A local server is back when `/health` (or `/v1/models`) says ok, not while it is still loading. */
const localHealth = (options: ProviderOptions) =>
  Local.health({ baseUrl: options.baseUrl, allowInsecureHttp: options.allowInsecureHttp }).pipe(Effect.filterOrFail((health) => health.status === "ok", () => "loading"))

const builtins: Readonly<Record<string, Builtin>> = {
  local_gpt_oss: { provider: Local.provider, probe: localHealth },
  local: { provider: Local.provider, probe: localHealth },
  openai: { provider: OpenAi.provider },
  anthropic: { provider: Anthropic.provider },
  openrouter: { provider: OpenRouter.provider }
}

const reserved = new Set(["backend", "fallback", "retry", "circuit_breaker"])

/** `record[key]` when `record` has it as its own property: never what every object inherits (`__proto__`, `constructor`). */
const own = <A>(record: Readonly<Record<string, A>>, key: string): A | undefined =>
  Object.hasOwn(record, key) ? record[key] : undefined

/** Where a configuration came from, named in every error. */
const describeSource = (source: string | undefined) => (source === undefined ? "the configuration" : source)

const invalid = (
  source: string | undefined,
  key: string,
  expected: string,
  got?: unknown,
  hint?: string
): ConfigError.ConfigError =>
  ConfigError.InvalidData(
    key.split("."),
    `${describeSource(source)}: ${key}: expected ${expected}${got === undefined ? "" : `, got ${JSON.stringify(got)}`}${
      hint === undefined ? "" : `; ${hint}`
    }`
  )

/** Reads a duration given in seconds (a number) or as text ("2 seconds"). */
const durationAt = (source: string | undefined, key: string, value: unknown): Duration.Duration | ConfigError.ConfigError | undefined => {
  if (value === undefined || value === null) return undefined
  if (typeof value === "number") {
    return Number.isFinite(value) && value >= 0 ? Duration.seconds(value) : invalid(source, key, "a non-negative number of seconds", value)
  }
  if (typeof value === "string" && durationProblem(value) === undefined) {
    const decoded = Duration.decodeUnknown(value as Duration.DurationInput)
    if (Option.isSome(decoded)) return decoded.value
  }
  return invalid(source, key, "a duration: seconds as a number, or text like \"2 seconds\"", value)
}

const isConfigError = (u: unknown): u is ConfigError.ConfigError => ConfigError.isConfigError(u)

/** A value as errors show it: credentials in a URL (`https://user:key@host`) are hidden. */
const display = (value: unknown): unknown => (typeof value === "string" ? displayUrl(value) : value)

/** What an environment variable name looks like; anything else in `api_key_env` may be the key itself. */
const envName = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Checks a section and turns it into provider options (the key is added later). */
const providerOptions = (
  source: string | undefined,
  name: string,
  section: BackendSection,
  retry: RetryOptions
): ProviderOptions | ConfigError.ConfigError => {
  const at = (key: string) => `llm.${name}.${key}`
  const out: Record<string, unknown> = { retry }
  if (section.allow_insecure_http === true) out.allowInsecureHttp = true
  if (section.base_url !== undefined) {
    const base = parseBaseUrl(String(section.base_url))
    if ("invalid" in base) {
      return invalid(
        source,
        at("base_url"),
        base.invalid === "notHttp" ? "an http:// or https:// URL" : "an http:// or https:// URL whose user info is percent-encoded",
        display(section.base_url),
        base.suggestion === undefined ? undefined : `did you mean ${JSON.stringify(base.suggestion)}?`
      )
    }
    out.baseUrl = section.base_url
  }
  if (section.model !== undefined) {
    if (typeof section.model !== "string" || section.model === "" || /[\r\n]/.test(section.model)) {
      return invalid(source, at("model"), "a model name on one line", section.model)
    }
    out.model = section.model
  }
  for (const [key, option] of [["timeout", "timeout"], ["first_token_timeout", "firstTokenTimeout"], ["idle_timeout", "idleTimeout"]] as const) {
    const duration = durationAt(source, at(key), section[key])
    if (isConfigError(duration)) return duration
    if (duration !== undefined) out[option] = duration
  }
  if (section.max_tokens !== undefined) {
    if (!Number.isInteger(section.max_tokens) || section.max_tokens <= 0) {
      return invalid(source, at("max_tokens"), "a positive integer", section.max_tokens)
    }
    out.maxTokens = section.max_tokens
  }
  if (section.temperature !== undefined) {
    if (typeof section.temperature !== "number" || !(section.temperature >= 0 && section.temperature <= 2)) {
      return invalid(source, at("temperature"), "a number between 0 and 2", section.temperature)
    }
    out.temperature = section.temperature
  }
  return out as ProviderOptions
}

/**
 * Refuses to send credentials (a key, or the base URL's user info) over plain
 * http to a host that is not loopback, unless allowed.
 */
const checkTransport = (
  source: string | undefined,
  name: string,
  section: BackendSection,
  baseUrl: string | undefined,
  hasKey: boolean
): ConfigError.ConfigError | undefined => {
  if (baseUrl === undefined || section.allow_insecure_http === true) return undefined
  const base = parseBaseUrl(baseUrl)
  if ("invalid" in base || !(hasKey || base.authorization !== undefined)) return undefined
  if (isInsecureRemote(base.parsed)) {
    return invalid(
      source,
      `llm.${name}.base_url`,
      "https:// for a remote host when an API key or user info is sent (set allow_insecure_http: true to allow plain http)",
      displayUrl(baseUrl)
    )
  }
  return undefined
}

/** The environment overrides: `LLM_BACKEND`, `LLM_FALLBACK`, `LLM_<NAME>_MODEL`, `LLM_<NAME>_BASE_URL`. */
const withEnvOverrides = (llm: LlmSection): Effect.Effect<LlmSection, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const backend = yield* Config.option(Config.string("LLM_BACKEND"))
    const fallback = yield* Config.option(Config.string("LLM_FALLBACK"))
    const merged: Record<string, unknown> = { ...llm }
    if (Option.isSome(backend)) merged.backend = backend.value
    if (Option.isSome(fallback)) merged.fallback = fallback.value.split(",").map((name) => name.trim()).filter((name) => name !== "")
    const names = new Set([merged.backend as string, ...((merged.fallback as ReadonlyArray<string> | undefined) ?? [])])
    for (const name of names) {
      if (typeof name !== "string") continue
      const env = overrideEnv(name)
      const model = yield* Config.option(Config.string(env.model))
      const baseUrl = yield* Config.option(Config.string(env.baseUrl))
      if (Option.isNone(model) && Option.isNone(baseUrl)) continue
      // defined, not assigned: a backend named `__proto__` must not set the prototype
      Object.defineProperty(merged, name, {
        value: {
          ...(own(merged, name) as BackendSection | undefined),
          ...(Option.isSome(model) ? { model: model.value } : {}),
          ...(Option.isSome(baseUrl) ? { base_url: baseUrl.value } : {})
        },
        enumerable: true,
        writable: true,
        configurable: true
      })
    }
    return merged as LlmSection
  })

/** Accepts `{ llm: {...} }` or the `llm` section itself. */
const llmSectionOf = (config: unknown, source: string | undefined): LlmSection | ConfigError.ConfigError => {
  if (typeof config !== "object" || config === null) return invalid(source, "llm", "an object with an llm section")
  const llm = "llm" in config ? (config as { llm: unknown }).llm : config
  if (typeof llm !== "object" || llm === null) return invalid(source, "llm", "an object")
  return llm as LlmSection
}

/**
 * Validates a configuration and builds its `Llm` layer: the primary backend,
 * or a `Fallback` chain when `llm.fallback` names more. Keys are read as
 * `Redacted` from the variables `api_key_env` names, through Effect's
 * `ConfigProvider`, which also supplies the `LLM_*` overrides.
 */
export const make = (
  config: LlmConfigInput | LlmSection,
  options: { readonly source?: string | undefined; readonly registry?: ReadonlyMap<string, BackendFactory> | undefined } = {}
): Effect.Effect<Layer.Layer<Llm, ConfigError.ConfigError>, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const source = options.source
    const service = yield* Effect.serviceOption(BackendRegistry)
    const custom = options.registry ?? Option.getOrElse(service, () => new Map<string, BackendFactory>())
    const parsed = llmSectionOf(config, source)
    if (isConfigError(parsed)) return yield* Effect.fail(parsed)
    const llm = yield* withEnvOverrides(parsed)
    const known = [...Object.keys(builtins), ...custom.keys()]
    const configured = Object.keys(llm).filter((key) => !reserved.has(key))
    const isKnown = (name: unknown): name is string =>
      typeof name === "string" && (Object.hasOwn(builtins, name) || custom.has(name))
    if (!isKnown(llm.backend)) {
      return yield* Effect.fail(invalid(source, "llm.backend", `one of ${known.join(", ")}`, llm.backend))
    }
    const fallback = llm.fallback ?? []
    if (!Array.isArray(fallback)) return yield* Effect.fail(invalid(source, "llm.fallback", "a list of backend names", fallback))
    for (const [i, name] of fallback.entries()) {
      const at = `llm.fallback[${i}]`
      if (name === llm.backend) {
        return yield* Effect.fail(invalid(source, at, `a backend to try after the primary, not the primary ${llm.backend} itself`, name))
      }
      if (!isKnown(name) || !configured.includes(name)) {
        return yield* Effect.fail(invalid(source, at, `a configured backend (${configured.join(", ")})`, name))
      }
      if (fallback.indexOf(name) < i) {
        return yield* Effect.fail(invalid(source, at, "each fallback backend once", name))
      }
    }
    const retrySection = llm.retry ?? {}
    const retry: Record<string, unknown> = {}
    if (retrySection.max_retries !== undefined) {
      if (!Number.isInteger(retrySection.max_retries) || retrySection.max_retries < 0) {
        return yield* Effect.fail(invalid(source, "llm.retry.max_retries", "a non-negative integer", retrySection.max_retries))
      }
      retry.maxRetries = retrySection.max_retries
    }
    for (const [key, option] of [["initial_delay", "initialDelay"], ["max_delay", "maxDelay"], ["max_retry_after", "maxRetryAfter"]] as const) {
      const duration = durationAt(source, `llm.retry.${key}`, retrySection[key])
      if (isConfigError(duration)) return yield* Effect.fail(duration)
      if (duration !== undefined) retry[option] = duration
    }

    const layers: Array<
      | Layer.Layer<Llm, ConfigError.ConfigError>
      | Fallback.ProbedLayer<ConfigError.ConfigError>
    > = []
    for (const name of [llm.backend, ...fallback]) {
      const section = (own(llm, name) ?? {}) as BackendSection
      if (typeof section !== "object" || section === null) {
        return yield* Effect.fail(invalid(source, `llm.${name}`, "a section of settings"))
      }
      const builtin = own(builtins, name)
      if (section.api_key_env !== undefined && (typeof section.api_key_env !== "string" || !envName.test(section.api_key_env))) {
        // never echoed: a value that is not a variable name may be the key itself, pasted in the wrong place
        return yield* Effect.fail(
          invalid(source, `llm.${name}.api_key_env`, "the name of an environment variable (letters, digits and _), not the key itself")
        )
      }
      const keyEnv = section.api_key_env ?? builtin?.provider.env.apiKey
      const apiKey = keyEnv === undefined ? Option.none() : yield* Config.option(Config.redacted(keyEnv))
      if (builtin?.provider.env.apiKeyRequired && Option.isNone(apiKey)) {
        return yield* Effect.fail(invalid(source, `llm.${name}.api_key_env`, `the environment variable ${keyEnv} to hold the API key; it is not set`))
      }
      const keyProblem = Option.isSome(apiKey) ? headerValueProblem(Redacted.value(apiKey.value)) : undefined
      if (keyProblem !== undefined) {
        // never echoed: it is the key
        return yield* Effect.fail(
          invalid(source, `llm.${name}.api_key_env`, `the environment variable ${keyEnv} to hold an API key a header can carry; the key ${keyProblem}`)
        )
      }
      const settings = providerOptions(source, name, section, retry as RetryOptions)
      if (isConfigError(settings)) return yield* Effect.fail(settings)
      if (builtin === undefined) {
        layers.push(custom.get(name)!({ name, section, apiKey, retry: retry as RetryOptions }))
        continue
      }
      const transport = checkTransport(source, name, section, settings.baseUrl, Option.isSome(apiKey))
      if (transport !== undefined) return yield* Effect.fail(transport)
      const layer = builtin.provider.layer({ ...settings, ...(Option.isSome(apiKey) ? { apiKey: apiKey.value } : {}) })
      layers.push(builtin.probe === undefined ? layer : { layer, probe: builtin.probe(settings) })
    }
    if (layers.length === 1) {
      const only = layers[0]!
      return "probe" in only ? only.layer : only
    }
    const breaker = llm.circuit_breaker
    const cooldown = durationAt(source, "llm.circuit_breaker.cooldown", breaker?.cooldown)
    if (isConfigError(cooldown)) return yield* Effect.fail(cooldown)
    if (breaker?.failure_threshold !== undefined && !(Number.isInteger(breaker.failure_threshold) && breaker.failure_threshold > 0)) {
      return yield* Effect.fail(invalid(source, "llm.circuit_breaker.failure_threshold", "a positive integer", breaker.failure_threshold))
    }
    return Fallback.layer(layers, {
      circuitBreaker: {
        failureThreshold: breaker?.failure_threshold,
        cooldown
      }
    })
  })

/** The `Llm` layer for a configuration given as a plain object (the seed's Quick Start). */
export const layerFrom = (
  config: LlmConfigInput | LlmSection,
  options: { readonly registry?: ReadonlyMap<string, BackendFactory> | undefined } = {}
): Layer.Layer<Llm, ConfigError.ConfigError> => Layer.unwrapEffect(make(config, options))

/** Parses a YAML or JSON configuration file. */
export const readFile = (path: string): Effect.Effect<unknown, ConfigError.ConfigError> =>
  Effect.try({
    try: () => {
      const text = readFileSync(path, "utf8")
      return path.endsWith(".json") ? JSON.parse(text) : parseYaml(text)
    },
    catch: (cause) =>
      ConfigError.InvalidData([], `${path}: cannot read the configuration: ${cause instanceof Error ? cause.message : String(cause)}`)
  })

/**
 * The `Llm` layer for a YAML or JSON file; the path defaults to the
 * `LLM_CONFIG` environment variable, then `config.yaml`.
 */
export const layerFromFile = (
  path?: string,
  options: { readonly registry?: ReadonlyMap<string, BackendFactory> | undefined } = {}
): Layer.Layer<Llm, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const file = path ?? (yield* Config.string("LLM_CONFIG").pipe(Config.withDefault("config.yaml")))
    const config = yield* readFile(file)
    return yield* make(config as LlmConfigInput, { ...options, source: file })
  }))

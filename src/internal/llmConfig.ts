/**
 * What `LlmConfig` does: the sections validated into one clear error and
 * turned into provider layers or a fallback chain. Loaded by the first
 * configuration built or read, not by importing the library: its schemas
 * and checks are most of what a configuration costs in memory.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import { readFileSync } from "node:fs"
import type { BackendFactory, BackendSection } from "../Config.js"
import * as Anthropic from "../layers/Anthropic.js"
import * as Fallback from "../layers/Fallback.js"
import * as Local from "../layers/Local.js"
import * as OpenAi from "../layers/OpenAi.js"
import * as OpenRouter from "../layers/OpenRouter.js"
import type { Llm, PromptCacheOption, ReasoningOption } from "../Llm.js"
import type * as McpToolkit from "../McpToolkit.js"
import type { JsonObject } from "../Message.js"
import * as Pricing from "../Pricing.js"
import { overrideEnv, type Provider, type ProviderOptions, type RateLimitOptions } from "../Provider.js"
import * as SharedState from "../SharedState.js"
import { isObject } from "./json.js"
import { entryProblem, reservedFields } from "./providerOptions.js"
import {
  displayUrl,
  durationProblem,
  hasLineBreak,
  headerValueProblem,
  isInsecureRemote,
  isNonNegativeInteger,
  isPositiveInteger,
  isTemperature,
  parseBaseUrl,
  temperatureRange
} from "./validate.js"

interface Builtin {
  /** The provider's declaration: its layer and the variable of its key. */
  readonly provider: Provider<ProviderOptions>
  /** How an open breaker checks the backend is back without spending a call. */
  readonly probe?: (options: ProviderOptions) => Effect.Effect<unknown, unknown>
  /** The settings only this backend reads, beyond `BackendSettings`. */
  readonly settings?: Schema.Schema<BuiltinSettings, { readonly [key: string]: unknown }>
}

const reserved = new Set(["backend", "fallback", "retry", "circuit_breaker"])

/** `record[key]` when `record` has it as its own property: never what every object inherits (`__proto__`, `constructor`). */
const own = <A>(record: Readonly<Record<string, A>>, key: string): A | undefined =>
  Object.hasOwn(record, key) ? record[key] : undefined

/** Where a configuration came from, named in every error. */
const describeSource = (source: string | undefined) => (source === undefined ? "the configuration" : source)

/** What a setting should have been, what it was (shown with any credentials in it hidden) and a hint. */
const expectation = (expected: string, got?: unknown, hint?: string): string =>
  `${expected}${got === undefined ? "" : `, got ${JSON.stringify(display(got))}`}${
    hint === undefined ? "" : `; ${hint}`
  }`

/** The keys a section's schema reads, as the file writes them. */
const keysOf = (schema: Schema.Schema.Any): ReadonlyArray<string> =>
  SchemaAST.getPropertySignatures(SchemaAST.encodedAST(schema.ast)).map((property) => String(property.name))

/** Edits (insertions, deletions, substitutions) from `a` to `b`. */
const editDistance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}

/**
 * The error for the first key of `section` that is none of `known` (a typo
 * would otherwise be ignored and leave the default), with the known key it
 * is closest to when that is a likely typo.
 */
const unknownKey = (
  source: string | undefined,
  at: string,
  section: unknown,
  known: ReadonlyArray<string>
): ConfigError.ConfigError | undefined => {
  if (!isSettings(section)) return undefined
  const key = Object.keys(section).find((key) => !known.includes(key))
  if (key === undefined) return undefined
  const [closest] = [...known].sort((a, b) => editDistance(key, a) - editDistance(key, b))
  const hint = closest !== undefined && editDistance(key, closest) <= Math.max(2, Math.floor(key.length / 3))
    ? `; did you mean ${closest}?`
    : ""
  return invalid(source, `${at}.${key}`, `one of the settings ${known.join(", ")}${hint}`)
}

/** The error for the setting at `key`: where it came from, the key and what was expected. */
const invalid = (source: string | undefined, key: string, expected: string): ConfigError.ConfigError =>
  ConfigError.InvalidData(key.split("."), `${describeSource(source)}: ${key}: expected ${expected}`)

/** A value as errors show it: credentials in a URL (`https://user:key@host`) are hidden. */
const display = (value: unknown): unknown => (typeof value === "string" ? displayUrl(value) : value)

const isConfigError = (u: unknown): u is ConfigError.ConfigError => ConfigError.isConfigError(u)

/**
 * A setting of a configuration section: `read` gives its value, or (left)
 * what was expected of it, to be shown after `expected`. Undefined is unset.
 */
const setting = <A>(
  target: Schema.Schema<A>,
  read: (value: unknown) => Either.Either<A, string>
): Schema.Schema<A | undefined, unknown> =>
  Schema.transformOrFail(Schema.Unknown, Schema.UndefinedOr(target), {
    strict: true,
    decode: (value, _, ast) =>
      value === undefined ? ParseResult.succeed(undefined) : Either.match(read(value), {
        onLeft: (expected) => ParseResult.fail(new ParseResult.Type(ast, value, expected)),
        onRight: ParseResult.succeed
      }),
    encode: ParseResult.succeed
  })

/** An optional setting under its snake_case key. */
const setAt = <A>(key: string, schema: Schema.Schema<A, unknown>) =>
  Schema.optionalWith(schema, { exact: true }).pipe(Schema.fromKey(key))

/** A duration given in seconds (a number) or as text ("2 seconds"); unset when null. */
const durationSetting = setting(Schema.UndefinedOr(Schema.DurationFromSelf), (value) => {
  if (value === null) return Either.right(undefined)
  if (typeof value === "number") {
    return Number.isFinite(value) && value >= 0
      ? Either.right(Duration.seconds(value))
      : Either.left(expectation("a non-negative number of seconds", value))
  }
  if (typeof value === "string" && durationProblem(value) === undefined) {
    const decoded = Duration.decodeUnknown(value)
    if (Option.isSome(decoded)) return Either.right(decoded.value)
  }
  return Either.left(expectation("a duration: seconds as a number, or text like \"2 seconds\"", value))
})

/** An http(s) base URL, checked as the layers check it. */
const baseUrlSetting = setting(Schema.String, (value) => {
  const text = String(value)
  const base = parseBaseUrl(text)
  if (!("invalid" in base)) return Either.right(text)
  return Either.left(expectation(
    base.invalid === "notHttp"
      ? "an http:// or https:// URL"
      : "an http:// or https:// URL whose user info is percent-encoded",
    value,
    base.suggestion === undefined ? undefined : `did you mean ${JSON.stringify(base.suggestion)}?`
  ))
})

const modelSetting = setting(Schema.String, (value) =>
  typeof value === "string" && value !== "" && !hasLineBreak(value)
    ? Either.right(value)
    : Either.left(expectation("a model name on one line", value)))

/** A setting that must satisfy `is`; `expected` says what it must be. */
const checked = <A>(target: Schema.Schema<A>, is: (value: unknown) => value is A, expected: string) =>
  setting(target, (value) => (is(value) ? Either.right(value) : Either.left(expectation(expected, value))))

/** Only `true` allows: anything else leaves the default (off). */
const allowSetting = setting<true | undefined>(
  Schema.UndefinedOr(Schema.Literal(true)),
  (value) => Either.right(value === true ? true : undefined)
)

const efforts: ReadonlyArray<string> = ["low", "medium", "high"]

/** Every call's reasoning: an effort (`high`), `off` / `false`, `{ effort }` or `{ budget_tokens }`. */
const reasoningSetting = setting<ReasoningOption>(
  Schema.declare((u): u is ReasoningOption => isObject(u)),
  (value) => {
    const expected = "low, medium, high, off, or { budget_tokens: a positive integer }"
    if (value === false || value === "off") return Either.right({ enabled: false })
    const effort = isObject(value) && Object.keys(value).length === 1 && "effort" in value ? value.effort : value
    if (typeof effort === "string" && efforts.includes(effort)) {
      return Either.right({ effort: effort as "low" | "medium" | "high" })
    }
    if (isObject(value) && Object.keys(value).length === 1 && isPositiveInteger(value.budget_tokens)) {
      return Either.right({ budgetTokens: value.budget_tokens })
    }
    return Either.left(expectation(expected, value))
  }
)

/** The prompt cache: `false` (off), `true` (the defaults), or `{ key, slot, ttl }`. */
const promptCacheSetting = setting<PromptCacheOption | false>(
  Schema.declare((u): u is PromptCacheOption | false => u === false || isObject(u)),
  (value) => {
    if (value === false) return Either.right(false)
    if (value === true) return Either.right({})
    if (!isObject(value)) return Either.left(expectation("false, or { key, slot, ttl }", value))
    const { key, slot, ttl, ...rest } = value
    const [unknown] = Object.keys(rest)
    if (unknown !== undefined) return Either.left(`only key, slot and ttl; ${JSON.stringify(unknown)} is not one`)
    if (key !== undefined && (typeof key !== "string" || key === "" || hasLineBreak(key))) {
      return Either.left(expectation("key: text on one line", key))
    }
    if (slot !== undefined && !isNonNegativeInteger(slot)) {
      return Either.left(expectation("slot: a non-negative integer", slot))
    }
    if (ttl !== undefined && ttl !== "5m" && ttl !== "1h") return Either.left(expectation("ttl: 5m or 1h", ttl))
    return Either.right({
      ...(key === undefined ? {} : { key: key as string }),
      ...(slot === undefined ? {} : { slot: slot as number }),
      ...(ttl === undefined ? {} : { ttl })
    })
  }
)

/** Extra request-body fields: a JSON object that replaces nothing every call sends. Its values are never echoed. */
const providerOptionsSetting = setting<JsonObject>(
  Schema.declare((u): u is JsonObject => isObject(u)),
  (value) => {
    const problem = entryProblem(value, "provider_options", reservedFields)
    return problem === undefined
      ? Either.right(value as JsonObject)
      : Either.left(`a JSON object of request-body fields (${problem})`)
  }
)

const rateLimitKeys = { requests_per_minute: "requestsPerMinute", tokens_per_minute: "tokensPerMinute" } as const

/** A backend's budgets: `{ requests_per_minute, tokens_per_minute }`, each a positive number. */
const rateLimitSetting = setting<RateLimitOptions>(
  Schema.declare((u): u is RateLimitOptions => isObject(u)),
  (value) => {
    if (!isObject(value)) return Either.left(expectation("{ requests_per_minute, tokens_per_minute }", value))
    const known = Object.keys(rateLimitKeys)
    const options: { -readonly [K in keyof RateLimitOptions]: RateLimitOptions[K] } = {}
    for (const [key, budget] of Object.entries(value)) {
      if (!Object.hasOwn(rateLimitKeys, key)) {
        const [closest] = [...known].sort((a, b) => editDistance(key, a) - editDistance(key, b))
        const hint = editDistance(key, closest!) <= Math.max(2, Math.floor(key.length / 3))
          ? `; did you mean ${closest}?`
          : ""
        return Either.left(`only ${known.join(" and ")}; ${JSON.stringify(key)} is not one${hint}`)
      }
      if (budget === undefined || budget === null) continue
      if (!(typeof budget === "number" && Number.isFinite(budget) && budget > 0)) {
        return Either.left(expectation(`${key}: a positive number`, budget))
      }
      options[rateLimitKeys[key as keyof typeof rateLimitKeys]] = budget
    }
    return Either.right(options)
  }
)

/** A backend's section, snake_case keys mapped to the layers' options, in the order they are checked. */
const BackendSettings = Schema.Struct({
  allowInsecureHttp: setAt("allow_insecure_http", allowSetting),
  baseUrl: setAt("base_url", baseUrlSetting),
  model: setAt("model", modelSetting),
  timeout: setAt("timeout", durationSetting),
  firstTokenTimeout: setAt("first_token_timeout", durationSetting),
  idleTimeout: setAt("idle_timeout", durationSetting),
  maxTokens: setAt("max_tokens", checked(Schema.Number, isPositiveInteger, "a positive integer")),
  temperature: setAt("temperature", checked(Schema.Number, isTemperature, `a number ${temperatureRange}`)),
  reasoning: setAt("reasoning", reasoningSetting),
  promptCache: setAt("prompt_cache", promptCacheSetting),
  providerOptions: setAt("provider_options", providerOptionsSetting),
  rateLimit: setAt("rate_limit", rateLimitSetting)
})

/** The settings only some backends read, beyond `BackendSettings`. */
interface BuiltinSettings {
  readonly server?: Local.LocalServer | "auto" | undefined
  readonly structuredOutput?: "tool" | "native" | undefined
}

/** What only a local backend's section sets: the server it speaks to (`server: llama.cpp`, or `auto`). */
const LocalSettings: Schema.Schema<BuiltinSettings, { readonly [key: string]: unknown }> = Schema.Struct({
  server: setAt(
    "server",
    checked(
      Schema.Literal(...Local.servers, "auto"),
      (value): value is Local.LocalServer | "auto" =>
        value === "auto" || (Local.servers as ReadonlyArray<unknown>).includes(value),
      `one of ${Local.servers.join(", ")} or auto`
    )
  )
})

/** What only an Anthropic section sets: how structured output is asked for (`structured_output: tool`, or `native`). */
const AnthropicSettings: Schema.Schema<BuiltinSettings, { readonly [key: string]: unknown }> = Schema.Struct({
  structuredOutput: setAt(
    "structured_output",
    checked(
      Schema.Literal("tool", "native"),
      (value): value is "tool" | "native" => value === "tool" || value === "native",
      "tool (a forced output tool, every model) or native (output_config, the models that have it)"
    )
  )
})

/** A local server is back when `/health` (or `/v1/models`) says ok, not while it is still loading. */
const localHealth = (options: ProviderOptions) =>
  Local.health({ baseUrl: options.baseUrl, allowInsecureHttp: options.allowInsecureHttp }).pipe(
    Effect.filterOrFail((health) => health.status === "ok", () => "loading")
  )

const builtins: Readonly<Record<string, Builtin>> = {
  local_gpt_oss: { provider: Local.provider, probe: localHealth, settings: LocalSettings },
  local: { provider: Local.provider, probe: localHealth, settings: LocalSettings },
  openai: { provider: OpenAi.provider },
  anthropic: { provider: Anthropic.provider, settings: AnthropicSettings },
  openrouter: { provider: OpenRouter.provider }
}

/** The `retry` section. */
const RetrySettings = Schema.Struct({
  maxRetries: setAt("max_retries", checked(Schema.Number, isNonNegativeInteger, "a non-negative integer")),
  initialDelay: setAt("initial_delay", durationSetting),
  maxDelay: setAt("max_delay", durationSetting),
  maxRetryAfter: setAt("max_retry_after", durationSetting)
})

/** A price: a finite number of dollars, not negative. */
const priceSetting = checked(
  Schema.Number,
  (value): value is number => typeof value === "number" && Number.isFinite(value) && value >= 0,
  "a price in US dollars per million tokens (a number, 0 or more)"
)

/** One model's prices under `pricing.<provider>.<model>`. */
const ModelPriceSettings = Schema.Struct({
  input: Schema.optionalWith(priceSetting, { exact: true }),
  output: Schema.optionalWith(priceSetting, { exact: true }),
  cacheRead: setAt("cache_read", priceSetting),
  cacheWrite: setAt("cache_write", priceSetting)
})

/**
 * The `pricing` section, if any, as prices to lay over the table in
 * context: each model's section checked, `input` and `output` required.
 */
const decodePricing = (
  config: unknown,
  source: string | undefined
): Either.Either<Pricing.Prices | undefined, ConfigError.ConfigError> => {
  // only beside an `llm` section: inside it, `pricing` would be a backend's name
  const section = isSettings(config) && "llm" in config && "pricing" in config ? config.pricing : undefined
  if (section === undefined || section === null) return Either.right(undefined)
  if (!isSettings(section) || Array.isArray(section)) {
    return Either.left(invalid(source, "pricing", "a section of providers, each a section of models"))
  }
  const prices: Record<string, Record<string, Pricing.ModelPrice>> = {}
  for (const [provider, models] of Object.entries(section)) {
    if (!isSettings(models) || Array.isArray(models)) {
      return Either.left(invalid(source, `pricing.${provider}`, "a section of models, each with its prices"))
    }
    const byModel: Record<string, Pricing.ModelPrice> = {}
    for (const [model, raw] of Object.entries(models)) {
      const at = `pricing.${provider}.${model}`
      if (!isSettings(raw) || Array.isArray(raw)) {
        return Either.left(invalid(source, at, "a section with input and output (and cache_read, cache_write)"))
      }
      const typo = unknownKey(source, at, raw, keysOf(ModelPriceSettings))
      if (typo !== undefined) return Either.left(typo)
      const decoded = decodeSection(ModelPriceSettings, source, at, raw)
      if (Either.isLeft(decoded)) return Either.left(decoded.left)
      const { cacheRead, cacheWrite, input, output } = decoded.right
      if (input === undefined || output === undefined) {
        return Either.left(
          invalid(
            source,
            `${at}.${input === undefined ? "input" : "output"}`,
            "a price in US dollars per million tokens"
          )
        )
      }
      Object.defineProperty(byModel, model, {
        value: {
          input,
          output,
          ...(cacheRead === undefined ? {} : { cacheRead }),
          ...(cacheWrite === undefined ? {} : { cacheWrite })
        },
        enumerable: true
      })
    }
    Object.defineProperty(prices, provider, { value: byModel, enumerable: true })
  }
  return Either.right(prices)
}

/** The `circuit_breaker` section. */
const BreakerSettings = Schema.Struct({
  cooldown: setAt("cooldown", durationSetting),
  failureThreshold: setAt("failure_threshold", checked(Schema.Number, isPositiveInteger, "a positive integer"))
})

/** A Redis URL (`redis://` or `rediss://` with a host); shown only without its credentials. */
const redisUrlProblem = (value: unknown): string | undefined => {
  if (typeof value !== "string") return "a redis:// or rediss:// URL"
  try {
    const parsed = new URL(value)
    return (parsed.protocol === "redis:" || parsed.protocol === "rediss:") && parsed.hostname !== ""
      ? undefined
      : "a redis:// or rediss:// URL"
  } catch {
    return "a redis:// or rediss:// URL"
  }
}

/** The name of an environment variable. */
const envNameSetting = setting(Schema.String, (value) =>
  typeof value === "string" && envName.test(value)
    ? Either.right(value)
    : Either.left("the name of an environment variable (letters, digits and _)"))

/** The `state.redis` section. */
const RedisSettings = Schema.Struct({
  url: setAt(
    "url",
    setting(Schema.String, (value) => {
      const problem = redisUrlProblem(value)
      if (problem !== undefined) return Either.left(expectation(problem, value))
      return new URL(value as string).password === ""
        ? Either.right(value as string)
        : Either.left("a Redis URL without a password: put it in password_env, or the whole URL in url_env")
    })
  ),
  urlEnv: setAt("url_env", envNameSetting),
  passwordEnv: setAt("password_env", envNameSetting),
  keyPrefix: setAt(
    "key_prefix",
    setting(Schema.String, (value) =>
      typeof value === "string" && value !== "" && !hasLineBreak(value)
        ? Either.right(value)
        : Either.left(expectation("text on one line", value)))
  ),
  commandTimeout: setAt("command_timeout", durationSetting)
})

/**
 * The `state` section, if any, as the Redis to share state through: one of
 * `url` and `url_env`, the password from `password_env`, both read as secrets.
 * Undefined when there is none (each process keeps its own state).
 */
const decodeState = (
  config: unknown,
  source: string | undefined
): Effect.Effect<SharedState.RedisOptions | undefined, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    // only beside an `llm` section: inside it, `state` would be a backend's name
    const section = isSettings(config) && "llm" in config && "state" in config ? config.state : undefined
    if (section === undefined || section === null) return undefined
    if (!isSettings(section) || Array.isArray(section)) {
      return yield* Effect.fail(invalid(source, "state", "a section with redis"))
    }
    const typo = unknownKey(source, "state", section, ["redis"])
    if (typo !== undefined) return yield* Effect.fail(typo)
    const redis = section.redis
    if (redis === undefined || redis === null) return undefined
    if (!isSettings(redis) || Array.isArray(redis)) {
      return yield* Effect.fail(invalid(source, "state.redis", "a section with url (or url_env)"))
    }
    const redisTypo = unknownKey(source, "state.redis", redis, keysOf(RedisSettings))
    if (redisTypo !== undefined) return yield* Effect.fail(redisTypo)
    const settings = yield* decodeSection(RedisSettings, source, "state.redis", redis)
    if (settings.url !== undefined && settings.urlEnv !== undefined) {
      return yield* Effect.fail(invalid(source, "state.redis.url", "either url or url_env, not both"))
    }
    if (settings.url === undefined && settings.urlEnv === undefined) {
      return yield* Effect.fail(
        invalid(source, "state.redis.url", "the Redis URL (or url_env, the environment variable holding it)")
      )
    }
    /** The variable `name` names, as a secret; its value never in an error. */
    const secret = (key: string, name: string) =>
      Effect.flatMap(
        Config.option(Config.redacted(name)),
        Option.match({
          onNone: () => Effect.fail(invalid(source, key, `the environment variable ${name} to be set`)),
          onSome: Effect.succeed
        })
      )
    let url: string | Redacted.Redacted<string> = settings.url ?? ""
    if (settings.urlEnv !== undefined) {
      const read = yield* secret("state.redis.url_env", settings.urlEnv)
      if (redisUrlProblem(Redacted.value(read)) !== undefined) {
        return yield* Effect.fail(
          invalid(source, "state.redis.url_env", `the environment variable ${settings.urlEnv} to hold a Redis URL`)
        )
      }
      url = read
    }
    const password = settings.passwordEnv === undefined
      ? undefined
      : yield* secret("state.redis.password_env", settings.passwordEnv)
    return {
      url,
      ...(password === undefined ? {} : { password }),
      ...(settings.keyPrefix === undefined ? {} : { keyPrefix: settings.keyPrefix }),
      ...(settings.commandTimeout === undefined ? {} : { commandTimeout: settings.commandTimeout })
    }
  })

/**
 * Decodes the section at `key` with its schema; the first setting that is
 * wrong is the error, named by its key. Anything but an object has no
 * settings (as a missing section).
 */
const decodeSection = <A, I>(
  schema: Schema.Schema<A, I>,
  source: string | undefined,
  key: string,
  section: unknown
): Either.Either<A, ConfigError.ConfigError> =>
  Either.mapLeft(
    Schema.decodeUnknownEither(schema)(typeof section === "object" && section !== null ? section : {}),
    (error) => {
      const [first] = ParseResult.ArrayFormatter.formatErrorSync(error)
      return invalid(source, [key, ...(first?.path ?? [])].join("."), first?.message ?? "a section of settings")
    }
  )

/** What an environment variable name looks like; anything else in `api_key_env` may be the key itself. */
const envName = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Refuses to send credentials (a key, or the base URL's user info) over plain
 * http to a host that is not loopback, unless allowed.
 */
const checkTransport = (
  source: string | undefined,
  name: string,
  settings: ProviderOptions,
  hasKey: boolean
): ConfigError.ConfigError | undefined => {
  if (settings.baseUrl === undefined || settings.allowInsecureHttp === true) return undefined
  const base = parseBaseUrl(settings.baseUrl)
  if ("invalid" in base || !(hasKey || base.authorization !== undefined)) return undefined
  if (isInsecureRemote(base.parsed)) {
    return invalid(
      source,
      `llm.${name}.base_url`,
      expectation(
        "https:// for a remote host when an API key or user info is sent (set allow_insecure_http: true to allow plain http)",
        settings.baseUrl
      )
    )
  }
  return undefined
}

/** The environment overrides: `LLM_BACKEND`, `LLM_FALLBACK`, `LLM_<NAME>_MODEL`, `LLM_<NAME>_BASE_URL`. */
const withEnvOverrides = (llm: Settings): Effect.Effect<Settings, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const backend = yield* Config.option(Config.string("LLM_BACKEND"))
    const fallback = yield* Config.option(Config.string("LLM_FALLBACK"))
    const merged: Record<string, unknown> = { ...llm }
    if (Option.isSome(backend)) merged.backend = backend.value
    if (Option.isSome(fallback)) {
      merged.fallback = fallback.value.split(",").map((name) => name.trim()).filter((name) => name !== "")
    }
    const names = new Set([merged.backend, ...(Array.isArray(merged.fallback) ? merged.fallback : [])])
    for (const name of names) {
      if (typeof name !== "string") continue
      const env = overrideEnv(name)
      const model = yield* Config.option(Config.string(env.model))
      const baseUrl = yield* Config.option(Config.string(env.baseUrl))
      if (Option.isNone(model) && Option.isNone(baseUrl)) continue
      const written = own(merged, name)
      // defined, not assigned: a backend named `__proto__` must not set the prototype
      Object.defineProperty(merged, name, {
        value: {
          ...(isSettings(written) ? written : {}),
          ...(Option.isSome(model) ? { model: model.value } : {}),
          ...(Option.isSome(baseUrl) ? { base_url: baseUrl.value } : {})
        },
        enumerable: true,
        writable: true,
        configurable: true
      })
    }
    return merged
  })

/** A section before it is checked: settings by key. */
type Settings = Readonly<Record<string, unknown>>

/** Whether `value` is a section of settings (an object). Its settings are checked where they are read. */
const isSettings = (value: unknown): value is Settings => typeof value === "object" && value !== null

/**
 * Whether `value` is a backend's section (an object). What the layers use
 * of it is checked by `BackendSettings`; a custom backend's factory gets it
 * as written.
 */
const isSection = (value: unknown): value is BackendSection => isSettings(value)

/** Accepts `{ llm: {...} }` or the `llm` section itself. */
const llmSectionOf = (config: unknown, source: string | undefined): Settings | ConfigError.ConfigError => {
  if (!isSettings(config)) return invalid(source, "llm", "an object with an llm section")
  const llm = "llm" in config ? config.llm : config
  return isSettings(llm) ? llm : invalid(source, "llm", "an object")
}

/** Where a configuration came from, and the custom backends it may name. */
export interface BuildOptions {
  readonly source?: string | undefined
  readonly registry?: ReadonlyMap<string, BackendFactory> | undefined
}

/** `LlmConfig.make` for a configuration of any shape, as a file holds it: its shape is checked like everything else. */
export const build = (
  config: unknown,
  options: BuildOptions
): Effect.Effect<Layer.Layer<Llm, ConfigError.ConfigError>, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const source = options.source
    const custom = options.registry ?? new Map<string, BackendFactory>()
    const parsed = llmSectionOf(config, source)
    if (isConfigError(parsed)) return yield* Effect.fail(parsed)
    const llm = yield* withEnvOverrides(parsed)
    const known = [...Object.keys(builtins), ...custom.keys()]
    const configured = Object.keys(llm).filter((key) => !reserved.has(key))
    const isKnown = (name: unknown): name is string =>
      typeof name === "string" && (Object.hasOwn(builtins, name) || custom.has(name))
    if (!isKnown(llm.backend)) {
      return yield* Effect.fail(invalid(source, "llm.backend", expectation(`one of ${known.join(", ")}`, llm.backend)))
    }
    const fallback = llm.fallback ?? []
    if (!Array.isArray(fallback)) {
      return yield* Effect.fail(invalid(source, "llm.fallback", expectation("a list of backend names", fallback)))
    }
    for (const [i, name] of fallback.entries()) {
      const at = `llm.fallback[${i}]`
      if (name === llm.backend) {
        return yield* Effect.fail(
          invalid(
            source,
            at,
            expectation(`a backend to try after the primary, not the primary ${llm.backend} itself`, name)
          )
        )
      }
      if (!isKnown(name) || !configured.includes(name)) {
        return yield* Effect.fail(
          invalid(source, at, expectation(`a configured backend (${configured.join(", ")})`, name))
        )
      }
      if (fallback.indexOf(name) < i) {
        return yield* Effect.fail(invalid(source, at, expectation("each fallback backend once", name)))
      }
    }
    const retry = yield* decodeSection(RetrySettings, source, "llm.retry", llm.retry)
    const retryTypo = unknownKey(source, "llm.retry", llm.retry, keysOf(RetrySettings))
    if (retryTypo !== undefined) return yield* Effect.fail(retryTypo)
    const prices = yield* decodePricing(config, source)
    const state = yield* decodeState(config, source)
    /**
     * The chain's layer, priced with the configuration's `pricing` section over the table in context, and
     * sharing its state through the `state` section's Redis (given to the chain and its backends).
     */
    const priced = (layer: Layer.Layer<Llm, ConfigError.ConfigError>) => {
      const withPrices = prices === undefined ? layer : Layer.provide(layer, Pricing.layer(prices))
      return state === undefined ? withPrices : Layer.provide(withPrices, SharedState.layerRedis(state))
    }

    const layers: Array<
      | Layer.Layer<Llm, ConfigError.ConfigError>
      | Fallback.ProbedLayer<ConfigError.ConfigError>
    > = []
    for (const name of [llm.backend, ...fallback]) {
      const section: unknown = own(llm, name) ?? {}
      if (!isSection(section)) {
        return yield* Effect.fail(invalid(source, `llm.${name}`, "a section of settings"))
      }
      const builtin = own(builtins, name)
      if (
        section.api_key_env !== undefined &&
        (typeof section.api_key_env !== "string" || !envName.test(section.api_key_env))
      ) {
        // never echoed: a value that is not a variable name may be the key itself, pasted in the wrong place
        return yield* Effect.fail(
          invalid(
            source,
            `llm.${name}.api_key_env`,
            "the name of an environment variable (letters, digits and _), not the key itself"
          )
        )
      }
      const keyEnv = section.api_key_env ?? builtin?.provider.env.apiKey
      const apiKey = keyEnv === undefined ? Option.none() : yield* Config.option(Config.redacted(keyEnv))
      if (builtin?.provider.env.apiKeyRequired && Option.isNone(apiKey)) {
        return yield* Effect.fail(
          invalid(
            source,
            `llm.${name}.api_key_env`,
            `the environment variable ${keyEnv} to hold the API key; it is not set`
          )
        )
      }
      const keyProblem = Option.isSome(apiKey) ? headerValueProblem(Redacted.value(apiKey.value)) : undefined
      if (keyProblem !== undefined) {
        // never echoed: it is the key
        return yield* Effect.fail(
          invalid(
            source,
            `llm.${name}.api_key_env`,
            `the environment variable ${keyEnv} to hold an API key a header can carry; the key ${keyProblem}`
          )
        )
      }
      const settings: ProviderOptions = {
        retry,
        ...yield* decodeSection(BackendSettings, source, `llm.${name}`, section),
        ...(builtin?.settings === undefined
          ? {}
          : yield* decodeSection(builtin.settings, source, `llm.${name}`, section))
      }
      if (builtin === undefined) {
        layers.push(custom.get(name)!({ name, section, apiKey, retry }))
        continue
      }
      const settingKeys = [
        "api_key_env",
        ...keysOf(BackendSettings),
        ...(builtin.settings ? keysOf(builtin.settings) : [])
      ]
      const typo = unknownKey(source, `llm.${name}`, section, settingKeys)
      if (typo !== undefined) return yield* Effect.fail(typo)
      const transport = checkTransport(source, name, settings, Option.isSome(apiKey))
      if (transport !== undefined) return yield* Effect.fail(transport)
      const layer = builtin.provider.layer({ ...settings, ...(Option.isSome(apiKey) ? { apiKey: apiKey.value } : {}) })
      layers.push(builtin.probe === undefined ? layer : { layer, probe: builtin.probe(settings) })
    }
    if (layers.length === 1) {
      const only = layers[0]!
      return priced("probe" in only ? only.layer : only)
    }
    const breaker = yield* decodeSection(BreakerSettings, source, "llm.circuit_breaker", llm.circuit_breaker)
    const breakerTypo = unknownKey(source, "llm.circuit_breaker", llm.circuit_breaker, keysOf(BreakerSettings))
    if (breakerTypo !== undefined) return yield* Effect.fail(breakerTypo)
    return priced(Fallback.layer(layers, {
      circuitBreaker: breaker
    }))
  })

/** `LlmConfig.readFile`: parses a YAML or JSON configuration file. */
export const readFile = (path: string): Effect.Effect<unknown, ConfigError.ConfigError> =>
  Effect.flatMap(
    // the YAML parser is loaded by the first YAML file read, not by importing the library
    path.endsWith(".json") ? Effect.succeed(JSON.parse) : Effect.promise(() => loadYaml()),
    (parse) =>
      Effect.try({
        try: () => parse(readFileSync(path, "utf8")) as unknown,
        catch: (cause) =>
          ConfigError.InvalidData(
            [],
            `${path}: cannot read the configuration: ${cause instanceof Error ? cause.message : String(cause)}`
          )
      })
  )

/** The `yaml` package's parser, loaded once, on first use. */
const loadYaml = (() => {
  let loaded: Promise<(text: string) => unknown> | undefined
  return () => (loaded ??= import("yaml").then((yaml) => (text: string) => yaml.parse(text) as unknown))
})()

/** Text (undefined is unset). */
const textSetting = setting(
  Schema.String,
  (value) => (typeof value === "string" ? Either.right(value) : Either.left(expectation("text", value)))
)

/** A map of names to values, each checked by `value` under its own key. */
const mapOf = <A>(value: Schema.Schema<A, unknown>) =>
  Schema.compose(
    setting(
      Schema.Record({ key: Schema.String, value: Schema.Unknown }),
      (map) =>
        isSettings(map) && !Array.isArray(map)
          ? Either.right(map as Readonly<Record<string, unknown>>)
          : Either.left(expectation("a map of names to values", map))
    ),
    Schema.UndefinedOr(Schema.Record({ key: Schema.String, value })),
    { strict: false }
  )

/** An MCP server's section, snake_case keys mapped to `McpToolkit`'s options. */
const McpServerSettings = Schema.Struct({
  command: setAt(
    "command",
    setting(Schema.String, (value) =>
      typeof value === "string" && value.trim() !== ""
        ? Either.right(value)
        : Either.left(expectation("a command to run", value)))
  ),
  args: setAt(
    "args",
    setting(
      Schema.Array(Schema.String),
      (value) =>
        Array.isArray(value) && value.every((arg) => typeof arg === "string")
          ? Either.right(value as ReadonlyArray<string>)
          : Either.left(expectation("a list of strings", value))
    )
  ),
  env: setAt("env", mapOf(textSetting)),
  cwd: setAt("cwd", textSetting),
  stderr: setAt(
    "stderr",
    setting<"inherit" | "ignore">(
      Schema.Literal("inherit", "ignore"),
      (value) =>
        value === "inherit" || value === "ignore"
          ? Either.right(value)
          : Either.left(expectation("\"inherit\" or \"ignore\"", value))
    )
  ),
  url: setAt("url", baseUrlSetting),
  headers: setAt("headers", mapOf(textSetting)),
  allowInsecureHttp: setAt("allow_insecure_http", allowSetting),
  prefix: setAt(
    "prefix",
    checked(Schema.Boolean, (value): value is boolean => typeof value === "boolean", "true or false")
  ),
  timeout: setAt("timeout", durationSetting),
  toolTimeouts: setAt("tool_timeouts", mapOf(durationSetting))
})

/** `${NAME}` in an env or header value. */
const reference = /\$\{([^}]*)\}/g

/**
 * A value with every `${VAR}` replaced by the variable, read through the
 * `ConfigProvider` as a secret: `Redacted` when it had any, as written when
 * not. Errors name the key and the variable, never the value.
 */
const interpolate = (
  source: string | undefined,
  key: string,
  value: string
): Effect.Effect<string | Redacted.Redacted<string>, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const names = [...value.matchAll(reference)].map((match) => match[1]!)
    if (names.length === 0) return value
    const values = new Map<string, string>()
    for (const name of names) {
      if (!envName.test(name)) {
        return yield* Effect.fail(
          invalid(source, key, "${NAME} to name an environment variable (letters, digits and _)")
        )
      }
      const read = yield* Config.option(Config.redacted(name))
      if (Option.isNone(read)) {
        return yield* Effect.fail(invalid(source, key, `the environment variable ${name} to be set`))
      }
      values.set(name, Redacted.value(read.value))
    }
    return Redacted.make(value.replace(reference, (_, name: string) => values.get(name)!))
  })

const interpolateAll = (
  source: string | undefined,
  key: string,
  values: Readonly<Record<string, string | undefined>> | undefined
) =>
  Effect.gen(function*() {
    if (values === undefined) return undefined
    const out: Record<string, string | Redacted.Redacted<string>> = {}
    for (const [name, value] of Object.entries(values)) {
      if (value !== undefined) out[name] = yield* interpolate(source, `${key}.${name}`, value)
    }
    return out
  })

/** `LlmConfig.mcpServers`: the servers of a configuration's `mcp_servers` section, checked. */
export const decodeMcpServers = (
  config: unknown,
  source: string | undefined
): Effect.Effect<ReadonlyArray<McpToolkit.Server>, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const section = isSettings(config) && "mcp_servers" in config ? config.mcp_servers : undefined
    if (section === undefined || section === null) return []
    if (!isSettings(section) || Array.isArray(section)) {
      return yield* Effect.fail(invalid(source, "mcp_servers", "a section of servers by name"))
    }
    const servers: Array<McpToolkit.Server> = []
    for (const [name, raw] of Object.entries(section)) {
      const at = `mcp_servers.${name}`
      if (!isSettings(raw) || Array.isArray(raw)) {
        return yield* Effect.fail(invalid(source, at, "a section of settings"))
      }
      const settings = yield* decodeSection(McpServerSettings, source, at, raw)
      if ((settings.command === undefined) === (settings.url === undefined)) {
        return yield* Effect.fail(invalid(source, at, "either command (stdio) or url (Streamable HTTP), not both"))
      }
      const common = {
        name,
        ...(settings.prefix === undefined ? {} : { prefix: settings.prefix }),
        ...(settings.timeout === undefined ? {} : { timeout: settings.timeout }),
        ...(settings.toolTimeouts === undefined ? {} : {
          toolTimeouts: Object.fromEntries(
            Object.entries(settings.toolTimeouts).flatMap(([tool, duration]) =>
              duration === undefined ? [] : [[tool, duration]]
            )
          )
        })
      }
      if (settings.command !== undefined) {
        const env = yield* interpolateAll(source, `${at}.env`, settings.env)
        servers.push({
          ...common,
          command: settings.command,
          ...(settings.args === undefined ? {} : { args: settings.args }),
          ...(env === undefined ? {} : { env }),
          ...(settings.cwd === undefined ? {} : { cwd: settings.cwd }),
          ...(settings.stderr === undefined ? {} : { stderr: settings.stderr })
        })
        continue
      }
      const url = settings.url!
      const headers = (yield* interpolateAll(source, `${at}.headers`, settings.headers)) ?? {}
      for (const [header, value] of Object.entries(headers)) {
        const problem = headerValueProblem(Redacted.isRedacted(value) ? Redacted.value(value) : value)
        // never echoed: it may be a key
        if (problem !== undefined) {
          return yield* Effect.fail(
            invalid(source, `${at}.headers.${header}`, `a value a header can carry; it ${problem}`)
          )
        }
      }
      const base = parseBaseUrl(url)
      const sendsCredentials = Object.keys(headers).length > 0 || ("authorization" in base && base.authorization)
      if (
        !("invalid" in base) && sendsCredentials && settings.allowInsecureHttp !== true && isInsecureRemote(base.parsed)
      ) {
        return yield* Effect.fail(
          invalid(
            source,
            `${at}.url`,
            expectation(
              "https:// for a remote host when headers are sent (set allow_insecure_http: true to allow plain http)",
              url
            )
          )
        )
      }
      servers.push({
        ...common,
        url,
        ...(Object.keys(headers).length === 0 ? {} : { headers }),
        ...(settings.allowInsecureHttp === true ? { allowInsecureHttp: true } : {})
      })
    }
    return servers
  })

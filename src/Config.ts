/**
 * The `Llm` layer picked from configuration (a plain object, a YAML or JSON
 * file, environment overrides), validated into one clear error, and turned
 * into a provider layer or a fallback chain.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { Llm } from "./Llm.js"
import * as McpToolkit from "./McpToolkit.js"
import type { RetryOptions } from "./Retry.js"

/**
 * One backend's section, keys as the configuration file writes them (snake_case).
 *
 * @since 0.1.0
 */
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
  /** Local backends: the server (`llama.cpp`, `ollama`, `vllm`, `lmstudio`, `mlx`) or `auto` (see `Local.LocalOptions.server`). */
  readonly server?: string
  /** Anthropic: how structured output is asked for, `tool` (the default) or `native` (see `Anthropic.AnthropicOptions.structuredOutput`). */
  readonly structured_output?: "tool" | "native"
  /** Every call's reasoning: `low`, `medium`, `high`, `off` (or `false`), or `{ budget_tokens: 2048 }`. */
  readonly reasoning?: "low" | "medium" | "high" | "off" | false | { readonly effort: string } | {
    readonly budget_tokens: number
  }
  /** The prompt cache: `false` (off), or `{ key, slot, ttl }` (see `PromptCacheOption`). */
  readonly prompt_cache?: false | { readonly key?: string; readonly slot?: number; readonly ttl?: "5m" | "1h" }
  /** Extra request-body fields sent on every call (JSON; see `ProviderOptions.providerOptions`). */
  readonly provider_options?: Readonly<Record<string, unknown>>
  /** Budgets shared by every process with the same state (see `Provider.RateLimitOptions`). */
  readonly rate_limit?: { readonly requests_per_minute?: number; readonly tokens_per_minute?: number }
  /** Anything else a custom backend needs. */
  readonly [key: string]: unknown
}

/**
 * The `llm` section of the configuration file.
 *
 * @since 0.1.0
 */
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

/**
 * One MCP server's section under `mcp_servers` (its name is its key): a
 * command to run over stdio, or a Streamable HTTP `url`. In `env` and
 * `headers` values, `${VAR}` is the environment variable `VAR`, read as a
 * secret (`Redacted`).
 *
 * @since 0.1.0
 */
export interface McpServerSection {
  readonly command?: string
  readonly args?: ReadonlyArray<string>
  readonly env?: Readonly<Record<string, string>>
  readonly cwd?: string
  /** `inherit` (the default) or `ignore`. */
  readonly stderr?: "inherit" | "ignore"
  readonly url?: string
  readonly headers?: Readonly<Record<string, string>>
  /** Send headers over plain http to a host that is not loopback (off by default). */
  readonly allow_insecure_http?: boolean
  /** Offer every tool as `<name>_<tool>`. */
  readonly prefix?: boolean
  /** Seconds (a number) or a duration ("90 seconds"): how long a call may take. */
  readonly timeout?: number | string
  /** Per tool (the server's name for it), as `timeout`. */
  readonly tool_timeouts?: Readonly<Record<string, number | string>>
}

/**
 * A model's prices under `pricing.<provider>.<model>`, in US dollars per
 * million tokens (see `Pricing.ModelPrice`).
 *
 * @since 0.1.0
 */
export interface PriceSection {
  readonly input: number
  readonly output: number
  readonly cache_read?: number
  readonly cache_write?: number
}

/**
 * The `state` section: where the state several processes share lives
 * (breakers, rate limits, conversations). Without it, each process keeps its
 * own. Credentials come from the environment: the password from
 * `password_env`, or the whole URL from `url_env`; both are read as `Redacted`.
 *
 * @since 0.1.0
 */
export interface StateSection {
  readonly redis?: {
    /** `redis://host:port/db` (or `rediss://`), without a password. */
    readonly url?: string
    /** The environment variable holding the URL (which may carry the password), instead of `url`. */
    readonly url_env?: string
    /** The environment variable holding the password. */
    readonly password_env?: string
    /** The prefix of every key (default `effect-llm:`). */
    readonly key_prefix?: string
    /** Seconds (a number) or a duration ("100 millis"): how long a command may take before a call goes on without Redis. */
    readonly command_timeout?: number | string
  }
}

/**
 * A whole configuration: `{ llm: {...} }`, as a configuration file holds it,
 * with the MCP servers to take tools from, the prices that override or
 * extend the bundled table (by provider, then model; `"*"` for every model
 * of a provider), and where the state shared by processes lives.
 *
 * @since 0.1.0
 */
export interface LlmConfigInput {
  readonly llm: LlmSection
  readonly mcp_servers?: Readonly<Record<string, McpServerSection>>
  readonly pricing?: Readonly<Record<string, Readonly<Record<string, PriceSection>>>>
  readonly state?: StateSection
}

/**
 * What a custom backend's factory gets.
 *
 * @since 0.1.0
 */
export interface BackendContext {
  readonly name: string
  readonly section: BackendSection
  /** The key from the section's `api_key_env`, when set and present. */
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  /** The shared retry settings. */
  readonly retry: RetryOptions
}

/**
 * Builds the layer of a backend from its section.
 *
 * @since 0.1.0
 */
export type BackendFactory = (context: BackendContext) => Layer.Layer<Llm, ConfigError.ConfigError>

/**
 * Custom backends by name, as a value passed
 * to `layerFrom` or as this service; no global mutable state.
 *
 * @since 0.1.0
 */
export class BackendRegistry extends Context.Tag("effect-llm/BackendRegistry")<
  BackendRegistry,
  ReadonlyMap<string, BackendFactory>
>() {}

/**
 * A registry layer from a record of factories.
 *
 * @since 0.1.0
 */
export const registry = (factories: Readonly<Record<string, BackendFactory>>): Layer.Layer<BackendRegistry> =>
  Layer.succeed(BackendRegistry, new Map(Object.entries(factories)))

/**
 * The implementation, loaded by the first configuration built or read: an
 * application that never uses `LlmConfig` never pays for its schemas.
 */
const implementation = Effect.promise(() => import("./internal/llmConfig.js"))

/** The custom backends: the ones passed, else the `BackendRegistry` service's, else none. */
const customBackends = (passed: ReadonlyMap<string, BackendFactory> | undefined) =>
  passed === undefined
    ? Effect.map(Effect.serviceOption(BackendRegistry), Option.getOrUndefined)
    : Effect.succeed(passed)

/** Where a configuration came from, and the custom backends it may name. */
interface MakeOptions {
  readonly source?: string | undefined
  readonly registry?: ReadonlyMap<string, BackendFactory> | undefined
}

/** Builds a configuration of any shape, as a file holds it: its shape is checked like everything else. */
const build = (
  config: unknown,
  options: MakeOptions
): Effect.Effect<Layer.Layer<Llm, ConfigError.ConfigError>, ConfigError.ConfigError> =>
  Effect.flatMap(
    Effect.zip(implementation, customBackends(options.registry)),
    ([LlmConfig, registry]) => LlmConfig.build(config, { source: options.source, registry })
  )

/** The MCP servers of a configuration of any shape, as a file holds it. */
const decodeMcpServers = (
  config: unknown,
  source: string | undefined
): Effect.Effect<ReadonlyArray<McpToolkit.Server>, ConfigError.ConfigError> =>
  Effect.flatMap(implementation, (LlmConfig) => LlmConfig.decodeMcpServers(config, source))

/** The configuration file's path: the one given, else `LLM_CONFIG`, else `config.yaml`. */
const filePath = (path: string | undefined): Effect.Effect<string, ConfigError.ConfigError> =>
  path === undefined ? Config.string("LLM_CONFIG").pipe(Config.withDefault("config.yaml")) : Effect.succeed(path)

/**
 * Validates a configuration and builds its `Llm` layer: the primary backend,
 * or a `Fallback` chain when `llm.fallback` names more. Keys are read as
 * `Redacted` from the variables `api_key_env` names, through Effect's
 * `ConfigProvider`, which also supplies the `LLM_*` overrides.
 *
 * @since 0.1.0
 */
export const make = (
  config: LlmConfigInput | LlmSection,
  options: MakeOptions = {}
): Effect.Effect<Layer.Layer<Llm, ConfigError.ConfigError>, ConfigError.ConfigError> => build(config, options)

/**
 * The `Llm` layer for a configuration given as a plain object.
 *
 * @since 0.1.0
 */
export const layerFrom = (
  config: LlmConfigInput | LlmSection,
  options: { readonly registry?: ReadonlyMap<string, BackendFactory> | undefined } = {}
): Layer.Layer<Llm, ConfigError.ConfigError> => Layer.unwrapEffect(make(config, options))

/**
 * Parses a YAML or JSON configuration file.
 *
 * @since 0.1.0
 */
export const readFile = (path: string): Effect.Effect<unknown, ConfigError.ConfigError> =>
  Effect.flatMap(implementation, (LlmConfig) => LlmConfig.readFile(path))

/**
 * The `Llm` layer for a YAML or JSON file; the path defaults to the
 * `LLM_CONFIG` environment variable, then `config.yaml`.
 *
 * @since 0.1.0
 */
export const layerFromFile = (
  path?: string,
  options: { readonly registry?: ReadonlyMap<string, BackendFactory> | undefined } = {}
): Layer.Layer<Llm, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const file = yield* filePath(path)
    const config = yield* readFile(file)
    return yield* build(config, { ...options, source: file })
  }))

/**
 * The MCP servers of a configuration's `mcp_servers` section (none when it
 * has none), checked like every other section: each mistake is a
 * `ConfigError` naming its key. `${VAR}` in `env` and `headers` values is
 * read through Effect's `ConfigProvider` as a secret.
 *
 * @since 0.1.0
 */
export const mcpServers = (
  config: LlmConfigInput | { readonly mcp_servers?: Readonly<Record<string, McpServerSection>> },
  options: { readonly source?: string | undefined } = {}
): Effect.Effect<ReadonlyArray<McpToolkit.Server>, ConfigError.ConfigError> => decodeMcpServers(config, options.source)

/**
 * The `McpToolkit` layer for a configuration's `mcp_servers`, given as a
 * plain object; `options` are the toolkit's other options.
 *
 * @since 0.1.0
 */
export const layerMcpFrom = (
  config: LlmConfigInput | { readonly mcp_servers?: Readonly<Record<string, McpServerSection>> },
  options: Omit<McpToolkit.Options, "servers"> = {}
): Layer.Layer<McpToolkit.McpToolkit, ConfigError.ConfigError | McpToolkit.McpServerError> =>
  Layer.unwrapEffect(
    Effect.map(mcpServers(config), (servers) => McpToolkit.layer({ ...options, servers }))
  )

/**
 * The `McpToolkit` layer for the `mcp_servers` of a YAML or JSON file; the
 * path defaults to the `LLM_CONFIG` environment variable, then `config.yaml`.
 *
 * @since 0.1.0
 */
export const layerMcpFromFile = (
  path?: string,
  options: Omit<McpToolkit.Options, "servers"> = {}
): Layer.Layer<McpToolkit.McpToolkit, ConfigError.ConfigError | McpToolkit.McpServerError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const file = yield* filePath(path)
    const config = yield* readFile(file)
    const servers = yield* decodeMcpServers(config, file)
    return McpToolkit.layer({ ...options, servers })
  }))

/**
 * A local OpenAI-compatible server: llama.cpp `llama-server`, Ollama, vLLM,
 * `mlx_lm.server`, LM Studio (gpt-oss models among them). No key is needed;
 * one is sent if given. The `server` option picks the dialect spoken (what
 * that server reads and sends, `ChatCompletions.dialects`), or detects it.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as ChatCompletions from "../codecs/ChatCompletions.js"
import { type LlmError, LlmTimeoutError } from "../errors.js"
import { HttpTransport } from "../HttpTransport.js"
import * as Deadlines from "../internal/deadlines.js"
import {
  connectionError,
  type ErrorContext,
  fromProviderFailure,
  invalidRequest,
  responseError
} from "../internal/errorFactory.js"
import { isObject } from "../internal/json.js"
import * as Projection from "../internal/projection.js"
import {
  describeBaseUrlProblem,
  displayUrl,
  durationProblem,
  headerValueProblem,
  isInsecureRemote,
  parseBaseUrl,
  plainHttpRefusal
} from "../internal/validate.js"
import { Llm } from "../Llm.js"
import * as Provider from "../Provider.js"

/**
 * The local servers whose dialect is known.
 *
 * @since 0.1.0
 */
export type LocalServer = "llama.cpp" | "ollama" | "vllm" | "lmstudio" | "mlx"

/**
 * The local servers whose dialect is known, as the `server` option and
 * `LLM_LOCAL_SERVER` name them.
 *
 * @since 0.1.0
 */
export const servers: ReadonlyArray<LocalServer> = ["llama.cpp", "ollama", "vllm", "lmstudio", "mlx"]

const isServer = (name: string): name is LocalServer => (servers as ReadonlyArray<string>).includes(name)

/**
 * Options of the local layer.
 *
 * @since 0.1.0
 */
export interface LocalOptions extends Provider.ProviderOptions {
  /**
   * `content` of an assistant message that only calls tools; by default the
   * dialect's (`""` for every local server: LM Studio, mlx_lm and
   * llama-cpp-python reject null).
   */
  readonly emptyAssistantContent?: null | "" | undefined
  /**
   * The server, hence the dialect spoken: one of `servers`; `"auto"`, which
   * detects the server at the first call (`detect`) and keeps the answer
   * (until it is known, and while it cannot be reached, calls speak the
   * generic local dialect and the next call asks again); or a dialect record
   * of your own. By default the generic local dialect
   * (`ChatCompletions.dialects.local`).
   */
  readonly server?: LocalServer | "auto" | ChatCompletions.Dialect | undefined
}

/** The dialect of a `server` option: a known server's, the record given, or the generic local one. */
const dialectOf = (server: LocalOptions["server"]): ChatCompletions.Dialect => {
  if (server === undefined || typeof server !== "string") return server ?? ChatCompletions.dialects.local
  return isServer(server) ? ChatCompletions.dialects[server] : ChatCompletions.dialects.local
}

/** The server's root, whether the user pasted it with `/v1` or without. */
const rootOf = (baseUrl: string): string => baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "")

/** The local provider as the provider kit declares it, one dialect per service. */
const declared = Provider.make<LocalOptions>({
  name: "local",
  defaults: {
    model: "gpt-oss:120b",
    baseUrl: "http://localhost:8080",
    timeout: "120 seconds",
    apiKeyEnv: "LLM_LOCAL_API_KEY"
  },
  apiKeyRequired: false,
  endpoint: (baseUrl) => `${rootOf(baseUrl)}/v1`,
  // llama-server's reasoning field and request option (other servers: see ChatCompletionsOptions)
  codec: (options) =>
    ChatCompletions.make({
      dialect: dialectOf(options.server),
      emptyAssistantContent: options.emptyAssistantContent
    })
})

/**
 * The local server's defaults.
 *
 * @since 0.1.0
 */
export const defaults = declared.defaults

/**
 * Whether a local server is ready to answer.
 *
 * @since 0.1.0
 */
export class Health extends Schema.Class<Health>("effect-llm/Local/Health")({
  /** `ok`: ready; `loading`: up, still loading the model (llama-server's 503). */
  status: Schema.Literal("ok", "loading"),
  /** Which endpoint answered. */
  endpoint: Schema.String
}) {}

/**
 * Where to probe and how long to wait.
 *
 * @since 0.1.0
 */
export interface ProbeOptions {
  /** The server's root, with or without `/v1`; user info in it is sent as Basic credentials. */
  readonly baseUrl?: string | undefined
  readonly timeout?: Duration.DurationInput | undefined
  /** The API key, sent as `Authorization: Bearer` (a server started with a key may want it). */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /** Send the key or the base URL's credentials over plain http to a host that is not loopback (default false). */
  readonly allowInsecureHttp?: boolean | undefined
}

/** The most of a probe's body that is read: enough for any model list, nothing a flood can fill memory with. */
const maxProbeBodyBytes = 1024 * 1024

/** Whom probe errors name. */
const probeContext: ErrorContext = { provider: "local", model: defaults.model }

/**
 * One `GET` to the server, aborted when `timeout` passes: its status and, if asked,
 * its body (at most `maxProbeBodyBytes`; `complete` is false past that).
 */
const probe = (path: string, options: ProbeOptions, readBody: boolean) => {
  const root = rootOf(options.baseUrl ?? defaults.baseUrl)
  const base = parseBaseUrl(root)
  if ("invalid" in base) return Effect.fail(invalidRequest(probeContext, describeBaseUrlProblem(root, base)))
  const key = options.apiKey === undefined ? undefined : Redacted.value(options.apiKey)
  const keyProblem = key === undefined ? undefined : headerValueProblem(key)
  if (keyProblem !== undefined) return Effect.fail(invalidRequest(probeContext, `the apiKey option ${keyProblem}`))
  if (key !== undefined && base.authorization !== undefined) {
    return Effect.fail(
      invalidRequest(probeContext, "the base URL has user info and an API key is given: give one of them")
    )
  }
  const authorization = key === undefined ? base.authorization : `Bearer ${key}`
  if (authorization !== undefined && isInsecureRemote(base.parsed) && options.allowInsecureHttp !== true) {
    const what = key === undefined ? "the base URL's credentials" : "the API key"
    return Effect.fail(invalidRequest(probeContext, plainHttpRefusal(what, base.parsed.host)))
  }
  const timeoutProblem = durationProblem(options.timeout)
  if (timeoutProblem !== undefined) {
    return Effect.fail(invalidRequest(probeContext, `the timeout option ${timeoutProblem}`))
  }
  // the password or key a server might echo back is redacted from its errors
  const context: ErrorContext = { ...probeContext, secrets: key === undefined ? base.secrets : [...base.secrets, key] }
  const url = `${rootOf(base.url)}${path}`
  // what messages show: the URL as given, its user info masked
  const shown = `${displayUrl(root)}${path}`
  const headers: Record<string, string> = authorization === undefined
    ? { accept: "application/json" }
    : { accept: "application/json", authorization }
  const timeout = Duration.decode(options.timeout ?? "2 seconds")
  const onTimeout = () =>
    new LlmTimeoutError({
      ...context,
      kind: "total",
      timeout,
      message: `local server at ${shown} did not answer in time`
    })
  return Effect.flatMap(
    HttpTransport,
    (transport) =>
      Effect.clockWith((clock) =>
        Deadlines.within(
          clock,
          Duration.toMillis(timeout),
          onTimeout,
          (abort) =>
            transport.send({ method: "GET", url, headers }, abort).pipe(
              Effect.mapError((error): LlmError => connectionError(context, error.cause, `probing ${shown}`)),
              Effect.flatMap(({ bytes, status }) =>
                readBody
                  ? Effect.matchEffect(bytes(maxProbeBodyBytes), {
                    // past the bound: `complete` says so; a body cut off by the network is a connection error
                    onFailure: (error) =>
                      error.reason === "tooLarge"
                        ? Effect.succeed({ status, text: "", complete: false, context })
                        : Effect.fail(connectionError(context, error.cause, `reading ${shown}`)),
                    onSuccess: (body) =>
                      Effect.succeed({ status, text: Buffer.from(body).toString("utf8"), complete: true, context })
                  })
                  // only the status matters: the body is left to arrive and be dropped
                  : Effect.succeed({ status, text: "", complete: true, context })
              )
            )
        )
      )
  )
}

/**
 * Asks a local server whether it is ready: `GET /health` (llama-server,
 * vLLM), falling back to `GET /v1/models` for servers without it (Ollama,
 * mlx_lm, LM Studio). Fails with `LlmConnectionError` when nothing listens.
 *
 * @since 0.1.0
 */
export const health = (options: ProbeOptions = {}): Effect.Effect<Health, LlmError> =>
  Effect.flatMap(probe("/health", options, false), ({ status }) => {
    if (status >= 200 && status < 300) return Effect.succeed(new Health({ status: "ok", endpoint: "/health" }))
    if (status === 503) return Effect.succeed(new Health({ status: "loading", endpoint: "/health" }))
    return Effect.flatMap(probe("/v1/models", options, false), (models) =>
      models.status >= 200 && models.status < 300
        ? Effect.succeed(new Health({ status: "ok", endpoint: "/v1/models" }))
        // only the status was read: the body is not quoted
        : Effect.fail(fromProviderFailure(models.context, { status: models.status })))
  })

/**
 * Lists the models a local server offers (`GET /v1/models`).
 *
 * @since 0.1.0
 */
export const models = (options: ProbeOptions = {}): Effect.Effect<ReadonlyArray<string>, LlmError> =>
  Effect.flatMap(probe("/v1/models", options, true), ({ complete, context, status, text }) => {
    if (!complete) {
      return Effect.fail(responseError(context, `the model list exceeds ${maxProbeBodyBytes} bytes`, status))
    }
    if (status < 200 || status >= 300) {
      return Effect.fail(fromProviderFailure(context, { status, message: text.slice(0, 200) }))
    }
    try {
      const body = JSON.parse(text) as { data?: ReadonlyArray<{ id?: unknown }> }
      return Effect.succeed((body.data ?? []).flatMap((model) => (typeof model.id === "string" ? [model.id] : [])))
    } catch {
      return Effect.fail(responseError(context, "the model list is not JSON", status))
    }
  })

/** What the first `/v1/models` entry with a known owner says (`owned_by`). */
const owners: Readonly<Record<string, LocalServer>> = {
  // llama-server (tools/server/README.md, GET /v1/models)
  llamacpp: "llama.cpp",
  // vLLM (vllm/entrypoints/openai/serving_models.py, ModelCard.owned_by)
  vllm: "vllm",
  // LM Studio
  organization_owner: "lmstudio",
  // Ollama gives the model's namespace (openai/openai.go ToListCompletion): `library` for the official models
  library: "ollama"
}

/** A probe's body as JSON when it answered 2xx with all of it, else undefined. */
const probeJson = (path: string, options: ProbeOptions) =>
  Effect.map(probe(path, options, true), (answer) => {
    let json: unknown
    if (answer.complete && answer.status >= 200 && answer.status < 300) {
      try {
        json = JSON.parse(answer.text)
      } catch {
        // not JSON: no evidence
      }
    }
    return { ...answer, json }
  })

/** Whether `json` is an object whose `key` is a string (`{"version":"0.12.6"}`). */
const hasString = (json: unknown, key: string): boolean => isObject(json) && typeof json[key] === "string"

/**
 * Finds out which local server answers at `baseUrl`, from its endpoints:
 * `GET /v1/models` first (the owner of its models: `llamacpp` is
 * llama-server, `vllm` vLLM, `organization_owner` LM Studio, `library`
 * Ollama); then `GET /api/version` (Ollama: `{"version"}`), `GET /props`
 * (llama-server: `default_generation_settings`, `total_slots`,
 * `build_info`) and `GET /version` (vLLM: `{"version"}`); a model list whose
 * entries have no owner at all is `mlx_lm.server`'s. Undefined when the
 * server answered but is none of these. Fails when it cannot be reached, or
 * answers `/v1/models` with 503 (llama-server while it loads the model).
 * Each probe has the probe helper's deadline and body bound.
 *
 * @since 0.1.0
 */
export const detect = (options: ProbeOptions = {}): Effect.Effect<LocalServer | undefined, LlmError> =>
  Effect.gen(function*() {
    const models = yield* probeJson("/v1/models", options)
    if (models.status === 503) {
      return yield* Effect.fail(
        fromProviderFailure(models.context, { status: 503, message: models.text.slice(0, 200) })
      )
    }
    const entries: ReadonlyArray<unknown> = isObject(models.json) && Array.isArray(models.json.data)
      ? models.json.data
      : []
    for (const entry of entries) {
      const owner = isObject(entry) ? entry.owned_by : undefined
      if (typeof owner === "string" && Object.hasOwn(owners, owner)) return owners[owner]
    }
    if (hasString((yield* probeJson("/api/version", options)).json, "version")) return "ollama" as const
    const props = (yield* probeJson("/props", options)).json
    if (isObject(props) && ["default_generation_settings", "total_slots", "build_info"].some((key) => key in props)) {
      return "llama.cpp" as const
    }
    if (hasString((yield* probeJson("/version", options)).json, "version")) return "vllm" as const
    const unowned = entries.length > 0 && entries.every((entry) => isObject(entry) && !("owned_by" in entry))
    return unowned ? "mlx" as const : undefined
  })

/** An `Llm` whose every call fails with `error` (a layer built from options that cannot work). */
const refusing = (llm: Llm.Service, error: LlmError): Llm.Service => ({
  ...llm,
  complete: () => Effect.fail(error),
  stream: () => Stream.fail(error)
})

/**
 * The service of `server: "auto"`: the generic dialect's until the server is
 * known, then the detected dialect's. Detection runs at the first call (one
 * at a time: concurrent first calls wait for it), not when the layer is
 * built, so a server that is down then cannot break the layer; an answer
 * (a known server, or none of them) is kept, a failure (unreachable,
 * loading) is not, and the next call asks again.
 */
const detecting = (options: LocalOptions): Effect.Effect<Llm.Service> =>
  Effect.gen(function*() {
    const transport = yield* HttpTransport
    const generic = yield* declared.make({ ...options, server: undefined })
    const lock = yield* Effect.makeSemaphore(1)
    const probing: ProbeOptions = {
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      allowInsecureHttp: options.allowInsecureHttp
    }
    let chosen: Llm.Service | undefined
    const choose: Effect.Effect<Llm.Service> = lock.withPermits(1)(Effect.suspend(() => {
      if (chosen !== undefined) return Effect.succeed(chosen)
      return detect(probing).pipe(
        Effect.flatMap((server) =>
          Effect.as(
            Effect.logDebug(`effect-llm: the local server speaks the ${server ?? "generic local"} dialect`),
            server
          )
        ),
        Effect.flatMap((server) =>
          server === undefined ? Effect.succeed(generic) : declared.make({ ...options, server })
        ),
        Effect.tap((service) =>
          Effect.sync(() => {
            chosen = service
          })
        ),
        // not kept: the next call asks again
        Effect.catchAll(() => Effect.succeed(generic)),
        Effect.provideService(HttpTransport, transport)
      )
    }))
    return {
      provider: generic.provider,
      model: generic.model,
      complete: (messages, callOptions) =>
        chosen !== undefined
          ? chosen.complete(messages, callOptions)
          : Effect.flatMap(choose, (service) => service.complete(messages, callOptions)),
      stream: (messages, callOptions) =>
        chosen !== undefined
          ? chosen.stream(messages, callOptions)
          : Projection.unwrap(Effect.map(choose, (service) => service.stream(messages, callOptions)))
    } satisfies Llm.Service
  })

/**
 * Builds the local `Llm` service for `options.server`'s dialect.
 *
 * @since 0.1.0
 */
export const make = (options: LocalOptions = {}): Effect.Effect<Llm.Service> => {
  const server = options.server
  if (server === "auto") return detecting(options)
  if (typeof server === "string" && !isServer(server)) {
    const problem = `the server option must be one of ${servers.join(", ")} or "auto", got ${JSON.stringify(server)}`
    return Effect.map(
      declared.make({ ...options, server: undefined }),
      (llm) => refusing(llm, invalidRequest({ provider: "local", model: llm.model }, problem))
    )
  }
  return declared.make(options)
}

/**
 * The local `Llm` as a layer.
 *
 * @since 0.1.0
 */
export const layer = (options: LocalOptions = {}): Layer.Layer<Llm> => Layer.effect(Llm, make(options))

/** `LLM_LOCAL_SERVER`, when set: one of `servers` or `auto`. */
const serverFromEnv: Config.Config<Option.Option<LocalServer | "auto">> = Config.option(
  Config.string("LLM_LOCAL_SERVER").pipe(
    Config.validate({
      message: `expected one of ${servers.join(", ")} or auto`,
      validation: (name): name is LocalServer | "auto" => name === "auto" || isServer(name)
    })
  )
)

/**
 * The local `Llm` configured from the environment: `LLM_LOCAL_BASE_URL`,
 * `LLM_LOCAL_MODEL`, an optional `LLM_LOCAL_API_KEY` and `LLM_LOCAL_SERVER`
 * (one of `servers`, or `auto`); `options` fill in the rest.
 *
 * @since 0.1.0
 */
export const layerConfig = (options: LocalOptions = {}): Layer.Layer<Llm, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all([Provider.readEnv(declared.env), serverFromEnv]),
      ([read, server]) => layer({ ...options, ...read, ...(Option.isSome(server) ? { server: server.value } : {}) })
    )
  )

/**
 * The local provider, declared once: its requests go to `<root>/v1`, whether
 * the base URL has `/v1` or not; `make`, `layer` and `layerConfig` take the
 * `server` option.
 *
 * @since 0.1.0
 */
export const provider: Provider.Provider<LocalOptions> = { ...declared, make, layer, layerConfig }

/**
 * A local OpenAI-compatible server: llama.cpp `llama-server`, Ollama, vLLM,
 * `mlx_lm.server`, LM Studio (gpt-oss models among them). No key is needed;
 * one is sent if given.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
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
import {
  describeBaseUrlProblem,
  displayUrl,
  durationProblem,
  isInsecureRemote,
  parseBaseUrl,
  plainHttpRefusal
} from "../internal/validate.js"
import * as Provider from "../Provider.js"

/**
 * Options of the local layer.
 *
 * @since 0.1.0
 */
export interface LocalOptions extends Provider.ProviderOptions {
  /**
   * `content` of an assistant message that only calls tools: `""` by default
   * (LM Studio and llama-cpp-python reject null).
   */
  readonly emptyAssistantContent?: null | "" | undefined
}

/** The server's root, whether the user pasted it with `/v1` or without. */
const rootOf = (baseUrl: string): string => baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "")

/**
 * The local provider, declared once: its requests go to `<root>/v1`, whether the base URL has `/v1` or not.
 *
 * @since 0.1.0
 */
export const provider = Provider.make<LocalOptions>({
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
      emptyAssistantContent: options.emptyAssistantContent ?? "",
      maxTokensField: "max_tokens",
      cachePrompt: true,
      reasoningField: "reasoning_content",
      reasoningRequest: "reasoning_effort"
    })
})

/**
 * The local server's defaults.
 *
 * @since 0.1.0
 */
export const defaults = provider.defaults

/**
 * Builds the local `Llm` service (`make`), as a layer (`layer`), or
 * configured from the environment (`layerConfig`: `LLM_LOCAL_BASE_URL`,
 * `LLM_LOCAL_MODEL` and an optional `LLM_LOCAL_API_KEY`; `options` fill in
 * the rest).
 *
 * @since 0.1.0
 */
export const { layer, layerConfig, make } = provider

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
  /** Send the base URL's credentials over plain http to a host that is not loopback (default false). */
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
  if (base.authorization !== undefined && isInsecureRemote(base.parsed) && options.allowInsecureHttp !== true) {
    return Effect.fail(invalidRequest(probeContext, plainHttpRefusal("the base URL's credentials", base.parsed.host)))
  }
  const timeoutProblem = durationProblem(options.timeout)
  if (timeoutProblem !== undefined) {
    return Effect.fail(invalidRequest(probeContext, `the timeout option ${timeoutProblem}`))
  }
  // the password a server might echo back is redacted from its errors
  const context: ErrorContext = { ...probeContext, secrets: base.secrets }
  const url = `${rootOf(base.url)}${path}`
  // what messages show: the URL as given, its user info masked
  const shown = `${displayUrl(root)}${path}`
  const headers: Record<string, string> = base.authorization === undefined
    ? { accept: "application/json" }
    : { accept: "application/json", authorization: base.authorization }
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

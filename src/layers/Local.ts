/**
 * A local OpenAI-compatible server: llama.cpp `llama-server`, Ollama, vLLM,
 * `mlx_lm.server`, LM Studio (gpt-oss models among them). No key is needed;
 * one is sent if given.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { connectionError, fromProviderFailure, type LlmError, LlmTimeoutError, responseError } from "../errors.js"
import { HttpTransport } from "../HttpTransport.js"
import { Llm } from "../Llm.js"
import * as ChatCompletions from "./ChatCompletions.js"
import * as HttpProvider from "./HttpProvider.js"

/** Options of the local layer. */
export interface LocalOptions extends HttpProvider.ProviderOptions {
  /**
   * `content` of an assistant message that only calls tools: `""` by default
   * (LM Studio and llama-cpp-python reject null).
   */
  readonly emptyAssistantContent?: null | "" | undefined
}

/** The seed's defaults. */
export const defaults = {
  model: "gpt-oss:120b",
  baseUrl: "http://localhost:8080",
  timeout: "120 seconds",
  apiKeyEnv: "LOCAL_LLM_API_KEY"
} as const

/** The server's root, whether the user pasted it with `/v1` or without. */
const rootOf = (baseUrl: string): string => baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "")

/** Builds the local `Llm` service. */
export const make = (options: LocalOptions = {}): Effect.Effect<Llm.Service> =>
  HttpProvider.make(HttpProvider.configFrom({ ...options, baseUrl: `${rootOf(options.baseUrl ?? defaults.baseUrl)}/v1` }, {
    provider: "local",
    model: defaults.model,
    baseUrl: defaults.baseUrl,
    timeout: defaults.timeout,
    codec: ChatCompletions.make({ emptyAssistantContent: options.emptyAssistantContent ?? "", maxTokensField: "max_tokens" }),
    apiKeyEnv: defaults.apiKeyEnv,
    headers: HttpProvider.bearer(options.apiKey)
  }))

/** The local backend as a layer. */
export const layer = (options: LocalOptions = {}): Layer.Layer<Llm> =>
  Layer.effect(Llm, make(options))

/**
 * The local backend configured from the environment: `LOCAL_LLM_BASE_URL`,
 * `LOCAL_LLM_MODEL` and an optional `LOCAL_LLM_API_KEY`; `options` fill in the rest.
 */
export const layerConfig = (
  options: LocalOptions = {}
): Layer.Layer<Llm, ConfigError.ConfigError> =>
  HttpProvider.layerConfig(
    { apiKey: defaults.apiKeyEnv, apiKeyRequired: false, model: "LOCAL_LLM_MODEL", baseUrl: "LOCAL_LLM_BASE_URL" },
    layer,
    options
  )

/** Whether a local server is ready to answer. */
export class Health extends Schema.Class<Health>("effect-llm/Local/Health")({
  /** `ok`: ready; `loading`: up, still loading the model (llama-server's 503). */
  status: Schema.Literal("ok", "loading"),
  /** Which endpoint answered. */
  endpoint: Schema.String
}) {}

/** Where to probe and how long to wait. */
export interface ProbeOptions {
  readonly baseUrl?: string | undefined
  readonly timeout?: Duration.DurationInput | undefined
}

/** The most of a probe's body that is read: enough for any model list, nothing a flood can fill memory with. */
const maxProbeBodyBytes = 1024 * 1024

/**
 * One `GET` to the server, bounded by `timeout`: its status and, if asked,
 * its body (at most `maxProbeBodyBytes`; `complete` is false past that).
 */
const probe = (path: string, options: ProbeOptions, readBody: boolean) => {
  const context = { provider: "local", model: defaults.model }
  const url = `${rootOf(options.baseUrl ?? defaults.baseUrl)}${path}`
  const timeout = Duration.decode(options.timeout ?? "2 seconds")
  return Effect.flatMap(HttpTransport, (transport) =>
    Effect.scoped(Effect.flatMap(Effect.scope, (scope) =>
      transport.send({ method: "GET", url, headers: { accept: "application/json" } }, scope).pipe(
        Effect.mapError((error): LlmError => connectionError(context, error.cause, `probing ${url}`)),
        Effect.flatMap(({ bytes, status }) =>
          readBody
            ? Effect.matchEffect(bytes(maxProbeBodyBytes), {
              // past the bound: `complete` says so; a body cut off by the network is a connection error
              onFailure: (error) =>
                error.reason === "tooLarge"
                  ? Effect.succeed({ status, text: "", complete: false })
                  : Effect.fail(connectionError(context, error.cause, `reading ${url}`)),
              onSuccess: (body) => Effect.succeed({ status, text: Buffer.from(body).toString("utf8"), complete: true })
            })
            // only the status matters: the body is left to arrive and be dropped
            : Effect.succeed({ status, text: "", complete: true })
        ),
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new LlmTimeoutError({ ...context, kind: "total", timeout, message: `local server at ${url} did not answer in time` })
        })
      )
    )))
}

/**
 * Asks a local server whether it is ready: `GET /health` (llama-server,
 * vLLM), falling back to `GET /v1/models` for servers without it (Ollama,
 * mlx_lm, LM Studio). Fails with `LlmConnectionError` when nothing listens.
 */
export const health = (options: ProbeOptions = {}): Effect.Effect<Health, LlmError> =>
  Effect.flatMap(probe("/health", options, false), ({ status }) => {
    if (status >= 200 && status < 300) return Effect.succeed(new Health({ status: "ok", endpoint: "/health" }))
    if (status === 503) return Effect.succeed(new Health({ status: "loading", endpoint: "/health" }))
    return Effect.flatMap(probe("/v1/models", options, false), (models) =>
      models.status >= 200 && models.status < 300
        ? Effect.succeed(new Health({ status: "ok", endpoint: "/v1/models" }))
        : Effect.fail(fromProviderFailure({ provider: "local", model: defaults.model }, { status: models.status, message: models.text.slice(0, 200) })))
  })

/** Lists the models a local server offers (`GET /v1/models`). */
export const models = (options: ProbeOptions = {}): Effect.Effect<ReadonlyArray<string>, LlmError> =>
  Effect.flatMap(probe("/v1/models", options, true), ({ complete, status, text }) => {
    const context = { provider: "local", model: defaults.model }
    if (!complete) return Effect.fail(responseError(context, `the model list exceeds ${maxProbeBodyBytes} bytes`, status))
    if (status < 200 || status >= 300) return Effect.fail(fromProviderFailure(context, { status, message: text.slice(0, 200) }))
    try {
      const body = JSON.parse(text) as { data?: ReadonlyArray<{ id?: unknown }> }
      return Effect.succeed((body.data ?? []).flatMap((model) => (typeof model.id === "string" ? [model.id] : [])))
    } catch {
      return Effect.fail(responseError(context, "the model list is not JSON", status))
    }
  })

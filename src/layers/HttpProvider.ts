/**
 * The machinery every HTTP backend shares: it turns a `WireCodec` and an
 * endpoint into an `Llm` service. Validation, HTTP, error mapping, retries,
 * the three timeouts, stream plumbing and interruption live here once; a
 * provider layer only picks a codec, a URL, headers and defaults.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  connectionError,
  type ErrorContext,
  fromProviderFailure,
  invalidRequest,
  type LlmError,
  LlmTimeoutError,
  responseError,
  type TimeoutKind
} from "../errors.js"
import { EventReader } from "../internal/eventReader.js"
import { type CompletionOptions, CompletionResult, type Llm, ResponseMetadata } from "../Llm.js"
import type { Message } from "../Message.js"
import * as Retry from "../Retry.js"
import { StreamEvent } from "../Stream.js"
import type { DecodedFinish, WireCodec } from "./WireCodec.js"

/** Everything a backend needs beyond its codec. */
export interface ProviderConfig {
  /** The backend's name in results, errors and spans. */
  readonly provider: string
  /** The default model. */
  readonly model: string
  /** The base URL the codec's path is appended to. */
  readonly baseUrl: string
  readonly codec: WireCodec
  /** Headers sent with every request, credentials included. Never logged. */
  readonly headers: Readonly<Record<string, string>>
  /** The environment variable the key comes from, named in authentication errors. */
  readonly apiKeyEnv?: string | undefined
  /** Deadline for one attempt, start to last byte. */
  readonly timeout: Duration.DurationInput
  /** Deadline for a stream's first content event (default: `timeout`). */
  readonly firstTokenTimeout?: Duration.DurationInput | undefined
  /** Deadline between two content events of a stream (default: none beyond `timeout`). */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Options applied to every call unless the call sets them. */
  readonly defaults?: CompletionOptions | undefined
  readonly retry?: Retry.RetryOptions | undefined
  /** The largest response body accepted, streamed or not (default 32 MiB). */
  readonly maxResponseBytes?: number | undefined
  /** Send credentials over plain http to a host that is not loopback (default false). */
  readonly allowInsecureHttp?: boolean | undefined
}

/** The default bound on a response body. */
export const defaultMaxResponseBytes = 32 * 1024 * 1024

/** The bound on an error response body we read for its message. */
const maxErrorBodyBytes = 1024 * 1024

const loopbackHost = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/

/** Whether sending credentials to `url` would cross the network in plain text (http to a non-loopback host). */
export const isInsecureRemote = (url: URL): boolean => url.protocol === "http:" && !loopbackHost.test(url.hostname)

/**
 * Why this configuration must not send anything: a header value that could
 * smuggle another header, or credentials over plain http to a remote host.
 */
const unsafeConfiguration = (config: ProviderConfig): string | undefined => {
  for (const name in config.headers) {
    if (/[\r\n]/.test(config.headers[name]!) || /[\r\n:]/.test(name)) return `the ${name} header contains a line break`
  }
  if (/[\r\n]/.test(config.model)) return "the model name contains a line break"
  let url: URL
  try {
    url = new URL(config.baseUrl)
  } catch {
    return `the base URL ${JSON.stringify(config.baseUrl)} is not a URL`
  }
  const sendsKey = "authorization" in config.headers || "x-api-key" in config.headers
  if (sendsKey && isInsecureRemote(url) && config.allowInsecureHttp !== true) {
    return `refusing to send the API key over plain http to ${url.host}; use https or set allowInsecureHttp`
  }
  return undefined
}

const requestIdHeaders = ["x-request-id", "request-id", "x-generation-id"]

const requestIdOf = (headers: Readonly<Record<string, string | undefined>>): string | undefined => {
  for (const name of requestIdHeaders) {
    const value = headers[name]
    if (value !== undefined && value !== "") return value
  }
  return undefined
}

/** Drops undefined fields so they do not hide the layer's defaults. */
const definedOnly = (options: CompletionOptions | undefined): CompletionOptions => {
  const out: Record<string, unknown> = {}
  if (options !== undefined) {
    for (const key in options) {
      const value = (options as Record<string, unknown>)[key]
      if (value !== undefined) out[key] = value
    }
  }
  return out as CompletionOptions
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

const isFailure = <A extends object>(value: A | LlmError): value is LlmError => "_tag" in value

/**
 * Builds an `Llm` service from a codec and an endpoint. Everything that does
 * not depend on the call (URL, headers, retry schedule) is built once here.
 */
export const make = (config: ProviderConfig): Effect.Effect<Llm.Service, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const { codec, provider } = config
    const baseContext: ErrorContext = { provider, model: config.model, apiKeyEnv: config.apiKeyEnv }
    const baseRequest = HttpClientRequest.post(config.baseUrl.replace(/\/+$/, "") + codec.path).pipe(
      HttpClientRequest.setHeaders({ ...config.headers, accept: "application/json, text/event-stream" })
    )
    const retryOptions = Retry.resolve(config.retry)
    const retryPolicy = Retry.schedule(retryOptions)
    const defaults = definedOnly(config.defaults)
    const maxResponseBytes = config.maxResponseBytes ?? defaultMaxResponseBytes
    const unsafe = unsafeConfiguration(config)

    /** Reads a whole body as UTF-8 text, failing past `limit` bytes or on invalid UTF-8. */
    const readText = (response: HttpClientResponse.HttpClientResponse, context: ErrorContext, limit: number) =>
      Effect.suspend(() => {
        const parts: Array<Uint8Array> = []
        let size = 0
        return response.stream.pipe(
          Stream.mapError((error) => connectionError(context, error.cause, "while reading the response")),
          Stream.runForEachChunk((chunk) => {
            for (const part of chunk) {
              size += part.length
              if (size > limit) {
                return Effect.fail(responseError(context, `the response body exceeds ${limit} bytes`, response.status))
              }
              parts.push(part)
            }
            return Effect.void
          }),
          Effect.flatMap(() => {
            try {
              return Effect.succeed(utf8.decode(Buffer.concat(parts, size)))
            } catch {
              return Effect.fail(responseError(context, "the response body is not valid UTF-8", response.status))
            }
          })
        )
      })

    /** Per-call settings: merged options, the encoded request, the deadlines. */
    const prepare = (messages: ReadonlyArray<Message>, callOptions: CompletionOptions | undefined, stream: boolean) => {
      const options: CompletionOptions = { ...defaults, ...definedOnly(callOptions) }
      if (unsafe !== undefined) return invalidRequest(baseContext, unsafe)
      const encoded = codec.encode({ model: config.model, messages, options, stream })
      if ("invalid" in encoded) return invalidRequest(baseContext, encoded.invalid)
      const total = Duration.decode(options.timeout ?? config.timeout)
      return {
        request: HttpClientRequest.bodyUnsafeJson(baseRequest, encoded.body),
        total,
        firstToken: Duration.min(Duration.decode(options.firstTokenTimeout ?? config.firstTokenTimeout ?? total), total),
        idle: options.idleTimeout ?? config.idleTimeout
      }
    }

    const timeoutError = (kind: TimeoutKind, timeout: Duration.Duration) =>
      new LlmTimeoutError({
        provider,
        model: config.model,
        kind,
        timeout,
        message: `${provider} (${config.model}): ${
          kind === "total" ? "the request" : kind === "firstToken" ? "the first token" : "the next token"
        } took longer than ${Duration.format(timeout)}`
      })

    /** The error a non-2xx response stands for, read from its status, headers and body. */
    const statusError = (response: HttpClientResponse.HttpClientResponse) =>
      Effect.map(Effect.orElseSucceed(readText(response, baseContext, maxErrorBodyBytes), () => ""), (text): LlmError => {
        let body: unknown = text
        try {
          body = JSON.parse(text)
        } catch {
          // not JSON: keep the text (an HTML error page, a proxy's message)
        }
        const headers = response.headers
        const shouldRetry = headers["x-should-retry"]
        return fromProviderFailure({ ...baseContext, requestId: requestIdOf(headers) }, {
          status: response.status,
          ...codec.readError(body),
          retryAfter: Retry.parseRetryAfter(headers, Date.now()),
          shouldRetry: shouldRetry === "true" ? true : shouldRetry === "false" ? false : undefined
        })
      })

    /** Sends one attempt and fails with the matching `LlmError` on a non-2xx status. */
    const send = (request: HttpClientRequest.HttpClientRequest) =>
      client.execute(request).pipe(
        Effect.mapError((error: HttpClientError.HttpClientError) =>
          connectionError(baseContext, error.cause, "before the response")
        ),
        Effect.flatMap((response) =>
          response.status < 300 ? Effect.succeed(response) : Effect.flip(statusError(response))
        )
      )

    const complete = (messages: ReadonlyArray<Message>, callOptions?: CompletionOptions) =>
      Effect.suspend(() => {
        const prepared = prepare(messages, callOptions, false)
        if ("_tag" in prepared) return Effect.fail(prepared)
        const started = Date.now()
        let attempts = 0
        const attempt = Effect.suspend(() => {
          attempts++
          return send(prepared.request).pipe(
            Effect.flatMap((response) => {
              const context = { ...baseContext, requestId: requestIdOf(response.headers) }
              return readText(response, context, maxResponseBytes).pipe(
                Effect.flatMap((text) => {
                  let body: unknown
                  try {
                    body = JSON.parse(text)
                  } catch {
                    return Effect.fail(responseError(context, `the response is not JSON: ${text.slice(0, 200)}`, 200))
                  }
                  const decoded = codec.decodeResponse(body, context)
                  return isFailure(decoded) ? Effect.fail(decoded) : Effect.succeed({ decoded, context })
                })
              )
            }),
            Effect.timeoutFail({ duration: prepared.total, onTimeout: () => timeoutError("total", prepared.total) })
          )
        })
        return attempt.pipe(
          Effect.retry(retryPolicy),
          Effect.map(({ context, decoded }) =>
            new CompletionResult({
              content: decoded.content,
              model: decoded.model,
              finishReason: decoded.finishReason,
              toolCalls: decoded.toolCalls,
              usage: decoded.usage,
              ...(decoded.reasoning === undefined ? {} : { reasoning: decoded.reasoning }),
              metadata: new ResponseMetadata({
                provider,
                ...(decoded.responseId === undefined ? {} : { responseId: decoded.responseId }),
                ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
                attempts,
                latencyMillis: Date.now() - started
              }, true)
            }, true)
          )
        )
      }).pipe(Effect.withSpan("Llm.complete", { attributes: { "llm.provider": provider, "llm.model": config.model } }))

    const stream = (messages: ReadonlyArray<Message>, callOptions?: CompletionOptions) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const prepared = prepare(messages, callOptions, true)
        if ("_tag" in prepared) return yield* Effect.fail(prepared)
        const clock = yield* Effect.clock
        const now = () => clock.unsafeCurrentTimeMillis()
        const outer = yield* Effect.scope
        const started = now()
        let attempts = 0
        let attemptStart = started
        let lastContent = started
        let firstContent: number | undefined
        let requestId: string | undefined
        let finished = false

        const finishEvent = (finish: DecodedFinish) =>
          StreamEvent.Finish({
            finishReason: finish.finishReason,
            usage: finish.usage,
            model: finish.model,
            metadata: new ResponseMetadata({
              provider,
              ...(finish.responseId === undefined ? {} : { responseId: finish.responseId }),
              ...(requestId === undefined ? {} : { requestId }),
              attempts,
              latencyMillis: now() - started,
              ...(firstContent === undefined ? {} : { firstTokenMillis: firstContent - started })
            }, true)
          })

        /** Opens one attempt and reads until its first events; returns them and the pull for the rest. */
        const openAttempt = Effect.gen(function*() {
          attempts++
          attemptStart = now()
          finished = false
          const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
          const opened = yield* Effect.gen(function*() {
            const response = yield* send(prepared.request)
            requestId = requestIdOf(response.headers)
            const context: ErrorContext = { ...baseContext, requestId }
            const contentType = response.headers["content-type"] ?? ""
            if (contentType.includes("text/html")) {
              return yield* Effect.fail(responseError(context, `expected an event stream, got ${contentType}`, response.status))
            }
            const reader = new EventReader(codec.streamDecoder(context), context)
            let received = 0
            const bytes = yield* Stream.toPull(response.stream).pipe(Scope.extend(scope))
            const end = (): Effect.Effect<Chunk.Chunk<StreamEvent>, Option.Option<LlmError>> => {
              if (finished) return Effect.fail(Option.none())
              finished = true
              const ended = reader.end()
              if (isFailure(ended)) return Effect.fail(Option.some(ended))
              ended.events.push(finishEvent(ended.finish))
              return Effect.succeed(Chunk.unsafeFromArray(ended.events))
            }
            const next: Effect.Effect<Chunk.Chunk<StreamEvent>, Option.Option<LlmError>> = Effect.suspend(() =>
              finished ? Effect.fail(Option.none()) : Effect.matchEffect(bytes, {
                onFailure: (error) =>
                  Option.isNone(error)
                    ? end()
                    : Effect.fail(Option.some(connectionError(context, error.value.cause, "mid-stream"))),
                onSuccess: (chunk) => {
                  let events: Array<StreamEvent> | LlmError = []
                  for (const piece of chunk) {
                    received += piece.length
                    if (received > maxResponseBytes) {
                      return Effect.fail(Option.some(responseError(context, `the response body exceeds ${maxResponseBytes} bytes`)))
                    }
                    const fed = reader.feed(piece)
                    if (isFailure(fed)) return Effect.fail(Option.some(fed))
                    events = events.length === 0 ? fed : events.concat(fed)
                  }
                  if (events.length > 0) lastContent = now()
                  if (reader.done) {
                    return Effect.map(end(), (rest) => Chunk.appendAll(Chunk.unsafeFromArray(events as Array<StreamEvent>), rest))
                  }
                  return Effect.succeed(Chunk.unsafeFromArray(events))
                }
              })
            )
            // read until something reaches the consumer: only then is the attempt committed
            let first: Chunk.Chunk<StreamEvent> = Chunk.empty()
            while (Chunk.isEmpty(first)) {
              const exit = yield* Effect.either(next)
              if (exit._tag === "Left") {
                if (Option.isNone(exit.left)) break
                return yield* Effect.fail(exit.left.value)
              }
              first = exit.right
            }
            firstContent = now()
            return { first, next }
          }).pipe(
            Effect.timeoutFail({
              duration: prepared.firstToken,
              onTimeout: () =>
                Duration.lessThan(prepared.firstToken, prepared.total)
                  ? timeoutError("firstToken", prepared.firstToken)
                  : timeoutError("total", prepared.total)
            }),
            Effect.onError(() => Scope.close(scope, Exit.void))
          )
          return opened
        })

        const { first, next } = yield* Effect.retry(openAttempt, retryPolicy).pipe(
          Effect.withSpan("Llm.stream.open", { attributes: { "llm.provider": provider, "llm.model": config.model } })
        )

        const totalMillis = Duration.toMillis(prepared.total)
        const idleMillis = prepared.idle === undefined ? Infinity : Duration.toMillis(Duration.decode(prepared.idle))
        /** One timer per stream, not per event: sleeps until the nearest deadline, then checks it. */
        const watchdog: Effect.Effect<never, LlmError> = Effect.suspend(() => {
          const totalDeadline = attemptStart + totalMillis
          const idleDeadline = lastContent + idleMillis
          const deadline = Math.min(totalDeadline, idleDeadline)
          const wait = deadline - now()
          if (wait > 0) return Effect.zipRight(Effect.sleep(wait), watchdog)
          return Effect.fail(
            deadline === totalDeadline
              ? timeoutError("total", prepared.total)
              : timeoutError("idle", Duration.millis(idleMillis))
          )
        })

        return Stream.concat(Stream.fromChunk(first), Stream.repeatEffectChunkOption(next)).pipe(
          Stream.interruptWhen(watchdog)
        )
      }))

    return { provider, model: config.model, complete, stream } satisfies Llm.Service
  })

/** The options every provider layer accepts. */
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
  readonly retry?: Retry.RetryOptions | undefined
  /** The largest response body accepted, streamed or not (default 32 MiB). */
  readonly maxResponseBytes?: number | undefined
  /** Send the key over plain http to a host that is not loopback (default false). */
  readonly allowInsecureHttp?: boolean | undefined
}

/** The default idle timeout between content events of a stream. */
export const defaultIdleTimeout: Duration.DurationInput = "30 seconds"

/** Fills a `ProviderConfig` from a provider's options and its own defaults. */
export const configFrom = (
  options: ProviderOptions,
  defaults: {
    readonly provider: string
    readonly model: string
    readonly baseUrl: string
    readonly timeout: Duration.DurationInput
    readonly codec: WireCodec
    readonly headers: Readonly<Record<string, string>>
    readonly apiKeyEnv?: string | undefined
  }
): ProviderConfig => ({
  provider: defaults.provider,
  model: options.model ?? defaults.model,
  baseUrl: options.baseUrl ?? defaults.baseUrl,
  codec: defaults.codec,
  headers: defaults.headers,
  apiKeyEnv: defaults.apiKeyEnv,
  timeout: options.timeout ?? defaults.timeout,
  firstTokenTimeout: options.firstTokenTimeout,
  idleTimeout: options.idleTimeout ?? defaultIdleTimeout,
  defaults: { maxTokens: options.maxTokens, temperature: options.temperature },
  retry: options.retry,
  maxResponseBytes: options.maxResponseBytes,
  allowInsecureHttp: options.allowInsecureHttp
})

/** `Authorization: Bearer <key>` when a key is given. */
export const bearer = (apiKey: Redacted.Redacted<string> | undefined): Record<string, string> =>
  apiKey === undefined ? {} : { authorization: `Bearer ${Redacted.value(apiKey)}` }

/** Where a provider's `layerConfig` reads its settings. */
export interface ConfigNames {
  /** The variable holding the API key (read with `Config.redacted`). */
  readonly apiKey: string
  /** Whether the layer fails without a key (cloud) or runs without one (local). */
  readonly apiKeyRequired: boolean
  /** The variable overriding the model. */
  readonly model: string
  /** The variable overriding the base URL. */
  readonly baseUrl: string
}

/**
 * Builds a provider's `layerConfig`: reads the key (as `Redacted`), the model
 * and the base URL through Effect's `Config`, then builds the layer with the
 * given options filling in the rest.
 */
export const layerConfig = <Options extends ProviderOptions, ROut, RIn>(
  names: ConfigNames,
  layer: (options: Options) => Layer.Layer<ROut, never, RIn>,
  options: Options
): Layer.Layer<ROut, ConfigError.ConfigError, RIn> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        apiKey: names.apiKeyRequired
          ? Config.map(Config.redacted(names.apiKey), Option.some)
          : Config.option(Config.redacted(names.apiKey)),
        model: Config.option(Config.string(names.model)),
        baseUrl: Config.option(Config.string(names.baseUrl))
      }),
      ({ apiKey, baseUrl, model }) =>
        layer({
          ...options,
          ...(Option.isSome(apiKey) ? { apiKey: apiKey.value } : {}),
          ...(Option.isSome(model) ? { model: model.value } : {}),
          ...(Option.isSome(baseUrl) ? { baseUrl: baseUrl.value } : {})
        })
    )
  )

/**
 * The machinery every HTTP backend shares: it turns a `WireCodec` and an
 * endpoint into an `Llm` service: the configuration's safety checks, then
 * `complete` and `stream` wired from the shared pieces in `internal/` (the
 * stream session, deadlines, response reading) and the retry runner. The
 * provider kit (`Provider.make`) is its public face.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { DecodedReply, EncodeInput, WireCodec } from "../codecs/WireCodec.js"
import type { LlmError } from "../errors.js"
import { HttpTransport } from "../HttpTransport.js"
import type { CompletionOptions, Llm } from "../Llm.js"
import type { JsonObject, Message, ReasoningPart } from "../Message.js"
import * as Pricing from "../Pricing.js"
import type { CompletionResult, StreamEvent } from "../Reply.js"
import * as SharedState from "../SharedState.js"
import { Usage } from "../Usage.js"
import { resolveConfiguration } from "./configuration.js"
import * as Deadlines from "./deadlines.js"
import { connectionError, type ErrorContext, invalidRequest } from "./errorFactory.js"
import { decodeWhole } from "./eventReader.js"
import * as Instrumentation from "./instrumentation.js"
import { isObject } from "./json.js"
import { projectable, type Projection } from "./projection.js"
import * as ProviderOptions from "./providerOptions.js"
import * as RateLimiter from "./rateLimiter.js"
import { textPart } from "./reasoning.js"
import { readTextThen, requestIdOf, statusError } from "./responseBody.js"
import * as Retry from "./retry.js"
import * as StreamSession from "./streamSession.js"
import { isDirect, type Request, type Response, type TransportError } from "./transport.js"
import * as Trusted from "./trustedClass.js"
import { modelProblem } from "./validate.js"

/**
 * Everything a backend needs beyond its codec.
 */
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
  /** Extra body fields sent on every call, under the call's own `providerOptions` entry for this backend. */
  readonly providerOptions?: JsonObject | undefined
  /** The budgets of requests and tokens a minute, shared through the `SharedState` in context. */
  readonly rateLimit?: RateLimiter.RateLimitOptions | undefined
}

/**
 * A call ready to send, or why it is refused; either way the endpoint of its model (whom errors and spans name).
 */
type Prepared =
  & { readonly endpoint: StreamSession.Endpoint; readonly options: CompletionOptions }
  & (
    | { readonly call: StreamSession.Call; readonly error?: undefined }
    | { readonly error: LlmError }
  )

/**
 * The default bound on a response body.
 */
export const defaultMaxResponseBytes = 32 * 1024 * 1024

/** A decoded reply's reasoning parts: the codec's, or its reasoning text as one part of `provider`. */
const reasoningPartsOf = (
  decoded: DecodedReply,
  provider: string
): { readonly reasoningParts?: ReadonlyArray<ReasoningPart> } => {
  if (decoded.reasoningParts !== undefined) {
    return decoded.reasoningParts.length === 0 ? {} : { reasoningParts: decoded.reasoningParts }
  }
  return decoded.reasoning ? { reasoningParts: [textPart(decoded.reasoning, provider)] } : {}
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

/**
 * Builds an `Llm` service from a codec and an endpoint. Everything that does
 * not depend on the call (URL, headers, retry schedule) is built once here.
 *
 * Requests go out through the `HttpTransport` in context (undici, directly,
 * unless a layer picks another).
 *
 * The hot paths are written for speed (see BENCHMARKS.md): no span is made
 * when nothing records spans, the retry schedule is only started by a first
 * failure, a stream is one channel that reads the transport's buffered bytes
 * and turns them into events (`internal/streamSession`), and each attempt's
 * deadlines are kept by one timer that aborts its request when one passes
 * (`internal/deadlines`), rather than by fibers racing the request or every
 * read.
 */
export const make = (config: ProviderConfig): Effect.Effect<Llm.Service> =>
  Effect.gen(function*() {
    const transport = yield* HttpTransport
    // the default transport sends an attempt released by its deadline, with no scope to make and close
    const direct = isDirect(transport) ? transport : undefined
    const pricing = yield* Pricing.Pricing
    const shared = yield* SharedState.current
    const { codec, provider } = config
    const resolved = resolveConfiguration(config)
    const unsafe = resolved.unsafe
    // credentials a server might echo back in its error text: redacted from every error message
    const context: ErrorContext = {
      provider,
      model: config.model,
      apiKeyEnv: config.apiKeyEnv,
      secrets: resolved.secrets
    }
    const url = resolved.baseUrl.replace(/\/+$/, "") + codec.path
    const headers: Record<string, string> = {
      ...resolved.headers,
      accept: "application/json, text/event-stream",
      "content-type": "application/json"
    }
    // a configuration refused for its retry options never sends, hence never retries
    const retryPolicy = Retry.schedule(Retry.resolve(unsafe === undefined ? config.retry : undefined))
    const retrying = Retry.retrying(retryPolicy)
    const defaults = definedOnly(config.defaults)
    const maxResponseBytes = config.maxResponseBytes ?? defaultMaxResponseBytes
    const reserved = { ...ProviderOptions.reservedFields, ...codec.reservedFields }
    const layerFields = config.providerOptions
    // a configuration refused for its options never sends, hence has nothing to limit
    const limits = unsafe === undefined
      ? yield* RateLimiter.make(config.rateLimit, shared, {
        baseUrl: resolved.baseUrl,
        credentials: `${resolved.headers.authorization ?? ""}\n${resolved.headers["x-api-key"] ?? ""}`
      })
      : undefined

    /**
     * Sends one attempt, aborted by its `deadline`, and hands a 2xx response to
     * `then` in the same step, or fails with the matching `LlmError` (naming
     * `context`'s model) on a non-2xx status; a transport
     * failure is the `LlmError` `onTransport` makes of it. A 429's
     * Retry-After holds the backend's `limiter`.
     */
    const sendFor = (context: ErrorContext, limiter: RateLimiter.Limiter | undefined) =>
    <A>(
      request: Request,
      deadline: Deadlines.Deadline,
      onTransport: (error: TransportError) => LlmError,
      then: (response: Response) => Effect.Effect<A, LlmError>
    ): Effect.Effect<A, LlmError> =>
      Effect.matchEffect(
        direct === undefined ? transport.send(request, deadline.abort!) : direct.sendDirect(request, deadline),
        {
          onFailure: (error) => Effect.fail(onTransport(error)),
          onSuccess: (response) => {
            if (response.status < 300) return then(response)
            const failed = Effect.flip(statusError(response, context, codec.readError))
            return limiter === undefined ?
              failed :
              Effect.tapError(failed, (error) =>
                error._tag === "LlmRateLimitError" && error.retryAfter !== undefined
                  ? limiter.hold(error.retryAfter)
                  : Effect.void)
          }
        }
      )

    /**
     * A reply's usage with its cost: the one the provider reported, else the
     * price of the model the server named, or of `requested`, times the
     * tokens; none for a model without a price, nor for a reply that reported
     * no usage (unless the model is free).
     */
    const priceFor = (requested: string) => (usage: Usage, reported: string | undefined): Usage => {
      if (usage.cost !== undefined) return usage
      const price = (reported === undefined ? undefined : pricing.lookup(provider, reported)) ??
        pricing.lookup(provider, requested)
      if (price === undefined || (usage === Usage.empty && !Pricing.isFree(price))) return usage
      return Trusted.usage({ ...usage, cost: Pricing.cost(price, usage) })
    }

    /** What the calls for one model share: whom errors and spans name, how attempts are sent, how replies are priced. */
    const endpointFor = (context: ErrorContext): StreamSession.Endpoint => {
      const limiter = limits?.forModel(context)
      return {
        codec,
        context,
        maxResponseBytes,
        retryPolicy,
        instrument: Instrumentation.make(provider, context.model, resolved.baseUrl),
        send: sendFor(context, limiter),
        scoped: direct === undefined,
        price: priceFor(context.model),
        limiter
      }
    }

    // built once for the layer's model; a call naming another model gets its own
    const endpoint = endpointFor(context)

    // the layer's deadlines, decoded once (a refused configuration never gets to them); a call's own, per call
    const layerTotal = unsafe === undefined ? Duration.decode(defaults.timeout ?? config.timeout) : Duration.zero
    const firstTokenOf = (total: Duration.Duration, firstToken: Duration.DurationInput | undefined) =>
      Duration.min(Duration.decode(firstToken ?? config.firstTokenTimeout ?? total), total)
    const layerFirstToken = unsafe === undefined ? firstTokenOf(layerTotal, defaults.firstTokenTimeout) : Duration.zero

    /** How a call's body is built: the codec's `encode`, or its `warm` for a warm-up. */
    type Encoder = (input: EncodeInput) => { readonly body: unknown } | { readonly invalid: string }

    /** Per-call settings: merged options, the endpoint of the call's model, the encoded request, the deadlines. */
    const prepare = (
      messages: ReadonlyArray<Message>,
      callOptions: CompletionOptions | undefined,
      stream: boolean,
      encode: Encoder = codec.encode
    ): Prepared => {
      const options: CompletionOptions = { ...defaults, ...definedOnly(callOptions) }
      if (unsafe !== undefined) return { endpoint, options, error: invalidRequest(context, unsafe) }
      const modelInvalid = modelProblem(options.model)
      if (modelInvalid !== undefined) return { endpoint, options, error: invalidRequest(context, modelInvalid) }
      const model = options.model ?? config.model
      const used = model === config.model ? endpoint : endpointFor({ ...context, model })
      const optionsInvalid = ProviderOptions.callProblem(options.providerOptions, provider, reserved)
      if (optionsInvalid !== undefined) {
        return { endpoint: used, options, error: invalidRequest(used.context, optionsInvalid) }
      }
      const encoded = encode({ model, messages, options, stream })
      if ("invalid" in encoded) return { endpoint: used, options, error: invalidRequest(used.context, encoded.invalid) }
      const callFields = options.providerOptions?.[provider]
      const fields = callFields === undefined
        ? layerFields
        : layerFields === undefined
        ? callFields
        : ProviderOptions.merge(layerFields, callFields)
      let body = encoded.body
      if (fields !== undefined) {
        if (!isObject(body)) {
          return {
            endpoint: used,
            options,
            error: invalidRequest(used.context, "providerOptions need a codec whose request body is a JSON object")
          }
        }
        body = ProviderOptions.merge(body, fields)
      }
      const ownTotal = options.timeout !== defaults.timeout
      const total = ownTotal ? Duration.decode(options.timeout ?? config.timeout) : layerTotal
      return {
        endpoint: used,
        options,
        call: {
          info: { messages, options, stream },
          request: { method: "POST", url, headers, body: JSON.stringify(body) },
          total,
          firstToken: ownTotal || options.firstTokenTimeout !== defaults.firstTokenTimeout
            ? firstTokenOf(total, options.firstTokenTimeout)
            : layerFirstToken,
          idle: options.idleTimeout ?? config.idleTimeout,
          ...(options.responseFormat === undefined ? {} : { options })
        }
      }
    }

    const onTransport = (context: ErrorContext) => (error: TransportError) =>
      connectionError(context, error.cause, "before the response")

    /** Reads and decodes a 2xx answer (`options`: the call's, for a codec that reads by them). */
    const reply = (context: ErrorContext, options: CompletionOptions | undefined) => (response: Response) => {
      const answering = { ...context, requestId: requestIdOf(context, response.headers) }
      const decode = options === undefined
        ? codec.decodeResponse
        : (body: unknown, at: ErrorContext) => codec.decodeResponse(body, at, options)
      return readTextThen(response, answering, maxResponseBytes, (text) => {
        const decoded = decodeWhole(text, decode, answering)
        return "_tag" in decoded ? Effect.fail(decoded) : Effect.succeed({ decoded, context: answering })
      })
    }

    /** A whole reply to the body `encode` builds (a warm-up's with `warm`), under its span when traced. */
    const completeWith = (encode: Encoder, warm: boolean) =>
    (
      messages: ReadonlyArray<Message>,
      callOptions?: CompletionOptions
    ): Effect.Effect<CompletionResult, LlmError> =>
      Effect.suspend(() => {
        const prepared = prepare(messages, callOptions, false, encode)
        const { context, instrument, limiter, price, scoped, send } = prepared.endpoint
        const info = { messages, options: prepared.options, stream: false, warm }
        // run once per call, inside the call's span and metrics, with the fiber's clock
        return Instrumentation.completion(instrument, info, (span, clock) => {
          if (prepared.error !== undefined) return Effect.fail(prepared.error)
          const { call } = prepared
          const started = clock.unsafeCurrentTimeMillis()
          const totalMillis = Duration.toMillis(call.total)
          const timeout = () => Deadlines.timeoutError(context, "total", call.total)
          const transportFailure = onTransport(context)
          const decode = reply(context, call.options)
          let attempts = 0
          /**
           * One attempt, its total deadline kept by a watchdog that aborts its request when it passes; under a
           * rate limit, the wait for the budget is part of it.
           */
          const attempt = Deadlines.attempt(clock, totalMillis, timeout, scoped, (deadline) => {
            attempts++
            const sent = send(call.request, deadline, transportFailure, decode)
            if (limiter === undefined) return sent
            return Effect.flatMap(
              limiter.admit(call.request.body?.length ?? 0, prepared.options.maxTokens, totalMillis),
              (permit) =>
                Effect.tapBoth(sent, {
                  onSuccess: ({ decoded }) => Effect.sync(() => permit.settle(decoded.usage)),
                  onFailure: (error) => Effect.sync(() => permit.settle(error.usage))
                })
            )
          })
          return Effect.map(retrying(attempt, Instrumentation.retried(instrument, span)), ({ context, decoded }) =>
            Trusted.completionResult({
              content: decoded.content,
              model: decoded.model,
              finishReason: decoded.finishReason,
              toolCalls: decoded.toolCalls,
              usage: price(decoded.usage, decoded.model),
              ...(decoded.reasoning === undefined ? {} : { reasoning: decoded.reasoning }),
              ...reasoningPartsOf(decoded, provider),
              metadata: Trusted.responseMetadata({
                provider,
                ...(decoded.responseId === undefined ? {} : { responseId: decoded.responseId }),
                ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
                attempts,
                latencyMillis: clock.unsafeCurrentTimeMillis() - started,
                ...(decoded.timings === undefined ? {} : { timings: decoded.timings })
              })
            }))
        })
      })

    /** A streamed call whose consumer gets `project` of each batch of events. */
    const projected = <A>(
      messages: ReadonlyArray<Message>,
      callOptions: CompletionOptions | undefined,
      project: Projection<A>
    ): Stream.Stream<A, LlmError> =>
      Stream.suspend(() => {
        const prepared = prepare(messages, callOptions, true)
        return prepared.error !== undefined
          ? Stream.fail(prepared.error)
          : StreamSession.open(prepared.endpoint, prepared.call, project)
      })

    // `textDeltas` of this stream keeps the text inside the decoding channel: no stage of its own
    const stream = (
      messages: ReadonlyArray<Message>,
      callOptions?: CompletionOptions
    ): Stream.Stream<StreamEvent, LlmError> =>
      projectable(<A>(project: Projection<A>) => projected(messages, callOptions, project))

    const complete = completeWith(codec.encode, false)
    const warm = codec.warm
    return {
      provider,
      model: config.model,
      complete,
      stream,
      ...(warm === undefined ? {} : { warm: completeWith((input) => warm(input), true) })
    } satisfies Llm.Service
  })

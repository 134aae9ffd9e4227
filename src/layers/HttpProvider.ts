/**
 * The machinery every HTTP backend shares: it turns a `WireCodec` and an
 * endpoint into an `Llm` service. Validation, HTTP, error mapping, retries,
 * the three timeouts, stream plumbing and interruption live here once; a
 * provider layer only picks a codec, a URL, headers and defaults.
 *
 * @since 0.1.0
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import { type LlmError, LlmTimeoutError, type TimeoutKind } from "../errors.js"
import {
  connectionError,
  type ErrorContext,
  fromProviderFailure,
  invalidRequest,
  quote,
  quoteLimits,
  responseError,
  withPartialText
} from "../internal/errorFactory.js"
import { HttpTransport } from "../HttpTransport.js"
import { type BodyReader, type Request, requestIdHeaders, type Response, type TransportError } from "../internal/transport.js"
import { decodeWhole, defaultMaxEventSize, EventReader } from "../internal/eventReader.js"
import {
  describeBaseUrlProblem,
  durationProblem,
  headerValueProblem,
  parseBaseUrl,
  plainHttpRefusal
} from "../internal/validate.js"
import { type CompletionOptions, type Llm } from "../Llm.js"
import { CompletionResult, ResponseMetadata, StreamEvent } from "../Reply.js"
import type { Message } from "../Message.js"
import * as Retry from "../internal/retry.js"
import { type Projection, projectable } from "../internal/textOnly.js"
import type { DecodedFinish, WireCodec } from "../codecs/WireCodec.js"

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

/** The layer option each header is set from, named in refusals (never the value). */
const headerOptions: Readonly<Record<string, string>> = {
  authorization: "apiKey",
  "x-api-key": "apiKey",
  "http-referer": "referer",
  "x-title": "title",
  "openai-organization": "organization",
  "openai-project": "project",
  "anthropic-beta": "anthropicBeta"
}

const describeHeader = (name: string) =>
  Object.hasOwn(headerOptions, name) ? `the ${headerOptions[name]!} option (the ${name} header)` : `the ${name} header`

/** The layer's durations, by the option that sets them. */
const durationsOf = (config: ProviderConfig) => [
  ["timeout", config.timeout],
  ["firstTokenTimeout", config.firstTokenTimeout],
  ["idleTimeout", config.idleTimeout]
] as const

/** A configuration as requests use it: where they go, what they carry, and what must never be shown back. */
interface Resolved {
  /** Why this configuration must not send anything, if it must not. */
  readonly unsafe: string | undefined
  /** The base URL without its user info. */
  readonly baseUrl: string
  /** The layer's headers, with Basic credentials from the base URL's user info. */
  readonly headers: Readonly<Record<string, string>>
  /** Credentials a server might echo back in its error text. */
  readonly secrets: ReadonlyArray<string>
}

/**
 * Checks a configuration once, when the layer is built: a header value that
 * could smuggle another header or that a header cannot carry, a base URL that
 * is not http(s), a duration that is not one, credentials over plain http to
 * a remote host. Takes the base URL's user info out of it, as Basic
 * credentials. Every call of a configuration that is `unsafe` fails with it.
 */
const resolveConfiguration = (config: ProviderConfig): Resolved => {
  const keys = ["authorization", "x-api-key"].flatMap((name) => {
    const value = config.headers[name]
    return value === undefined ? [] : [value.replace(/^Bearer\s+/i, "")]
  })
  const refused = (unsafe: string, secrets = keys): Resolved => ({ unsafe, baseUrl: config.baseUrl, headers: config.headers, secrets })
  for (const name in config.headers) {
    if (/[\r\n:]/.test(name)) return refused(`the ${name} header contains a line break`)
    const problem = headerValueProblem(config.headers[name]!)
    if (problem !== undefined) return refused(`${describeHeader(name)} ${problem}`)
  }
  if (/[\r\n]/.test(config.model)) return refused("the model name contains a line break")
  for (const [option, input] of durationsOf(config)) {
    const problem = durationProblem(input)
    if (problem !== undefined) return refused(`the ${option} option ${problem}`)
  }
  const retryProblem = Retry.problem(config.retry)
  if (retryProblem !== undefined) return refused(retryProblem)
  const base = parseBaseUrl(config.baseUrl)
  if ("invalid" in base) return refused(describeBaseUrlProblem(config.baseUrl, base))
  const secrets = [...keys, ...base.secrets]
  if (base.authorization !== undefined && "authorization" in config.headers) {
    return refused(
      "the base URL's user info would be sent as Basic authorization, and the API key (apiKey) is sent as the authorization header: give one of them",
      secrets
    )
  }
  const sendsKey = base.authorization !== undefined || "authorization" in config.headers || "x-api-key" in config.headers
  if (sendsKey && isInsecureRemote(base.parsed) && config.allowInsecureHttp !== true) {
    const what = base.authorization === undefined ? "the API key" : "the base URL's credentials"
    return refused(plainHttpRefusal(what, base.parsed.host), secrets)
  }
  return {
    unsafe: undefined,
    baseUrl: base.url,
    headers: base.authorization === undefined ? config.headers : { ...config.headers, authorization: base.authorization },
    secrets
  }
}

/** The response's request id, redacted and bounded like any server text (a proxy may echo the key in it). */
const requestIdOf = (context: ErrorContext, headers: Readonly<Record<string, string | undefined>>): string | undefined => {
  for (const name of requestIdHeaders) {
    const value = headers[name]
    if (value !== undefined && value !== "") return quote(context, value, quoteLimits.header)
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

/** One attempt's output (its events, or what a projection keeps of them), one batch of network reads at a time. */
type BodyDecoder<A> = Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, void, unknown>

const isFailure = <A extends object>(value: A | LlmError): value is LlmError => "_tag" in value

/** Effect's built-in tracer. Its spans are recorded nowhere: no exporter, no log, nothing a user can read. */
const nativeTracer = Effect.runSync(Effect.tracer)

/** Where a stream stands, for its watchdog: still waiting for content, or streaming it. */
type Phase = "opening" | "streaming"

/** One attempt of a call: its request and the watchdog keeping its deadlines. */
interface Attempt {
  /** When it started (clock millis; streams only). */
  readonly start: number
  /** Closing it aborts the request. */
  readonly abort: Scope.CloseableScope
  /** The timeout its watchdog saw pass, if any. */
  timedOut: LlmTimeoutError | undefined
  /** Whether its reply was read to the end. */
  completed: boolean
  /** Stops its watchdog. */
  stopWatchdog: () => void
}

/** Effect's default clock: its `sleep` is a `setTimeout`. */
const nativeClock = Effect.runSync(Effect.clock)

/** The longest delay `setTimeout` takes; Effect's clock treats longer sleeps as endless. */
const maxTimerMillis = 2 ** 31 - 1

/**
 * Starts a watchdog: `check` runs now and again after each wait it returns,
 * until it returns `undefined` (it has acted). Under Effect's default clock
 * it is a plain timer; under any other clock (`TestClock`) a fiber that
 * sleeps on that clock. Returns the function that stops it.
 */
const startWatchdog = (clock: Clock.Clock, check: () => number | undefined): Effect.Effect<() => void> => {
  if (clock === nativeClock) {
    return Effect.sync(() => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const tick = () => {
        const wait = check()
        timer = wait !== undefined && wait <= maxTimerMillis ? setTimeout(tick, wait) : undefined
      }
      tick()
      return () => clearTimeout(timer)
    })
  }
  const loop: Effect.Effect<void> = Effect.suspend(() => {
    const wait = check()
    return wait === undefined ? Effect.void : Effect.zipRight(Effect.sleep(wait), loop)
  })
  return Effect.map(Effect.forkDaemon(loop), (fiber) => () => fiber.unsafeInterruptAsFork(FiberId.none))
}

/**
 * Records that `attempt` ran out of time, and aborts its request: the send
 * or read pending on it fails at once, and the attempt fails with the timeout.
 */
const expire = (attempt: Attempt, timeout: LlmTimeoutError): undefined => {
  attempt.timedOut = timeout
  Effect.runFork(Scope.close(attempt.abort, aborted))
  return undefined
}

/** The exit that closes an attempt's scope to abort its request (a success exit lets a used reply finish). */
const aborted = Exit.interrupt(FiberId.none)

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
 * and turns them into events, and each attempt's deadlines are kept by one
 * timer that aborts its request when one passes, rather than by fibers racing
 * the request or every read.
 */
export const make = (config: ProviderConfig): Effect.Effect<Llm.Service> =>
  Effect.gen(function*() {
    const transport = yield* HttpTransport
    const { codec, provider } = config
    const resolved = resolveConfiguration(config)
    const unsafe = resolved.unsafe
    // credentials a server might echo back in its error text: redacted from every error message
    const baseContext: ErrorContext = { provider, model: config.model, apiKeyEnv: config.apiKeyEnv, secrets: resolved.secrets }
    const url = resolved.baseUrl.replace(/\/+$/, "") + codec.path
    const headers: Record<string, string> = {
      ...resolved.headers,
      accept: "application/json, text/event-stream",
      "content-type": "application/json"
    }
    // a configuration refused for its retry options never sends, hence never retries
    const retryOptions = Retry.resolve(unsafe === undefined ? config.retry : undefined)
    const retryPolicy = Retry.schedule(retryOptions)
    const defaults = definedOnly(config.defaults)
    const maxResponseBytes = config.maxResponseBytes ?? defaultMaxResponseBytes
    const spanAttributes = { "llm.provider": provider, "llm.model": config.model }

    /**
     * Runs `effect` in the span `name` when the application installed a
     * tracer. Under Effect's built-in tracer nothing records spans, so neither
     * ours nor the transport's `http.client` span is made: they cost more
     * than a small request's own work.
     */
    const traced = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.tracerWith((tracer) =>
        tracer === nativeTracer
          ? Effect.withTracerEnabled(effect, false)
          : Effect.withSpan(effect, name, { attributes: spanAttributes })
      )

    /**
     * `attempt`, retried by the policy on failure. The schedule is only
     * started by a first failure (it is then fed that failure, so it decides
     * exactly as `Effect.retry(attempt, policy)` would): a call that succeeds
     * at once pays nothing for it.
     */
    const retrying = <A>(attempt: Effect.Effect<A, LlmError>): Effect.Effect<A, LlmError> =>
      Effect.catchAll(attempt, (first) => {
        let replayed = false
        return Effect.retry(
          Effect.suspend(() => {
            if (replayed) return attempt
            replayed = true
            return Effect.fail(first)
          }),
          retryPolicy
        )
      })

    /**
     * Reads a whole body as UTF-8 text, failing past `limit` bytes (at once
     * when its `content-length` says so) or on invalid UTF-8.
     */
    const readText = (response: Response, context: ErrorContext, limit: number): Effect.Effect<string, LlmError> =>
      Effect.matchEffect(response.bytes(limit), {
        onFailure: (error) =>
          Effect.fail(
            error.reason === "tooLarge"
              ? responseError(context, `the response body exceeds ${limit} bytes`, response.status)
              : connectionError(context, error.cause, "while reading the response")
          ),
        onSuccess: (body) => {
          try {
            return Effect.succeed(utf8.decode(body))
          } catch {
            return Effect.fail(responseError(context, "the response body is not valid UTF-8", response.status))
          }
        }
      })

    /** Per-call settings: merged options, the encoded request, the deadlines. */
    const prepare = (messages: ReadonlyArray<Message>, callOptions: CompletionOptions | undefined, stream: boolean) => {
      const options: CompletionOptions = { ...defaults, ...definedOnly(callOptions) }
      if (unsafe !== undefined) return invalidRequest(baseContext, unsafe)
      const encoded = codec.encode({ model: config.model, messages, options, stream })
      if ("invalid" in encoded) return invalidRequest(baseContext, encoded.invalid)
      const total = Duration.decode(options.timeout ?? config.timeout)
      return {
        request: { method: "POST", url, headers, body: JSON.stringify(encoded.body) } satisfies Request,
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
    const statusError = (response: Response) =>
      Effect.map(
        Effect.orElseSucceed(readText(response, baseContext, maxErrorBodyBytes), () => ""),
        (text): LlmError => {
          let body: unknown = text
          try {
            body = JSON.parse(text)
          } catch {
            // not JSON: keep the text (an HTML error page, a proxy's message)
          }
          const { headers } = response
          const shouldRetry = headers["x-should-retry"]
          return fromProviderFailure({ ...baseContext, requestId: requestIdOf(baseContext, headers) }, {
            status: response.status,
            ...codec.readError(body),
            retryAfter: Retry.parseRetryAfter(headers, Date.now()),
            shouldRetry: shouldRetry === "true" ? true : shouldRetry === "false" ? false : undefined
          })
        }
      )

    /**
     * Sends one attempt in the scope `abort` and fails with the matching
     * `LlmError` on a non-2xx status; a transport failure is the `LlmError`
     * `onTransport` makes of it.
     */
    const send = (
      request: Request,
      abort: Scope.Scope,
      onTransport: (error: TransportError) => LlmError
    ): Effect.Effect<Response, LlmError> =>
      Effect.matchEffect(transport.send(request, abort), {
        onFailure: (error) => Effect.fail(onTransport(error)),
        onSuccess: (response) => response.status < 300 ? Effect.succeed(response) : Effect.flip(statusError(response))
      })

    /**
     * Releases an attempt: stops its watchdog and closes its scope, which
     * lets a reply read to its terminator finish (its connection is reused)
     * and aborts any other.
     */
    const release = (attempt: Attempt) =>
      Effect.suspend(() => {
        attempt.stopWatchdog()
        return Scope.close(attempt.abort, attempt.completed ? Exit.void : aborted)
      })

    const complete = (messages: ReadonlyArray<Message>, callOptions?: CompletionOptions) =>
      traced(
        "Llm.complete",
        Effect.suspend(() => {
          const prepared = prepare(messages, callOptions, false)
          if ("_tag" in prepared) return Effect.fail(prepared)
          const started = Date.now()
          let attempts = 0
          const totalMillis = Duration.toMillis(prepared.total)
          const onTransport = (error: TransportError) => connectionError(baseContext, error.cause, "before the response")
          /** Reads and decodes a 2xx answer. */
          const reply = (response: Response) => {
            const context = { ...baseContext, requestId: requestIdOf(baseContext, response.headers) }
            return Effect.flatMap(readText(response, context, maxResponseBytes), (text) => {
              const decoded = decodeWhole(text, codec.decodeResponse, context)
              return isFailure(decoded) ? Effect.fail(decoded) : Effect.succeed({ decoded, context })
            })
          }
          /**
           * One attempt. Its total deadline is kept by a watchdog (a timer)
           * that, when it passes, aborts the request: the pending send or read
           * then fails, and the attempt fails with the timeout.
           */
          const attempt = Effect.flatMap(Scope.make(), (abort) => {
            attempts++
            const current: Attempt = {
              start: 0,
              abort,
              timedOut: undefined,
              completed: false,
              stopWatchdog: () => {}
            }
            let armed = false
            const check = () => {
              if (armed) return expire(current, timeoutError("total", prepared.total))
              armed = true
              return totalMillis
            }
            return Effect.flatMap(Effect.clockWith((clock) => startWatchdog(clock, check)), (stop) => {
              current.stopWatchdog = stop
              return send(prepared.request, abort, onTransport).pipe(
                Effect.flatMap(reply),
                Effect.map((answer) => {
                  current.completed = true
                  return answer
                }),
                Effect.mapError((error) => current.timedOut ?? error),
                Effect.ensuring(release(current))
              )
            })
          })
          return Effect.map(retrying(attempt), ({ context, decoded }) =>
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
            }, true))
        })
      )

    /** A streamed call whose consumer gets `project` of each batch of events. */
    const projected = <A>(
      messages: ReadonlyArray<Message>,
      callOptions: CompletionOptions | undefined,
      project: Projection<A>
    ): Stream.Stream<A, LlmError> =>
      Stream.suspend(() => {
        const prepared = prepare(messages, callOptions, true)
        return "_tag" in prepared ? Stream.fail(prepared) : session(prepared, project)
      })

    // `textDeltas` of this stream keeps the text inside the decoding channel: no stage of its own
    const stream = (messages: ReadonlyArray<Message>, callOptions?: CompletionOptions): Stream.Stream<StreamEvent, LlmError> =>
      projectable(<A>(project: Projection<A>) => projected(messages, callOptions, project))

    /**
     * One streamed call: attempts until one yields its first events (the
     * consumer has seen nothing before, so retrying is safe), then that
     * attempt's events. Each attempt is one channel, response bytes →
     * decoder → consumer, with no fiber, queue or race per read: a watchdog
     * per attempt waits for the next deadline (first token, total, idle)
     * and, when one passes, records which and aborts the request, so the
     * pending send or read fails at once and that failure becomes the
     * `LlmTimeoutError`.
     */
    const session = <A>(
      prepared: Exclude<ReturnType<typeof prepare>, LlmError>,
      project: Projection<A>
    ): Stream.Stream<A, LlmError> => {
      const totalMillis = Duration.toMillis(prepared.total)
      const firstTokenMillis = Duration.toMillis(prepared.firstToken)
      const firstTokenKind: TimeoutKind = Duration.lessThan(prepared.firstToken, prepared.total) ? "firstToken" : "total"
      const idleMillis = prepared.idle === undefined ? Infinity : Duration.toMillis(Duration.decode(prepared.idle))
      let clock: Clock.Clock | undefined
      const now = () => clock!.unsafeCurrentTimeMillis()
      let started = 0
      let attempts = 0
      /** The attempt under way (an older attempt's watchdog stands down). */
      let current: Attempt | undefined
      let lastContent = 0
      let firstContent: number | undefined
      let requestId: string | undefined
      let phase: Phase = "opening"
      /** The retry schedule's state, made by the first failure. */
      let driver: Schedule.ScheduleDriver<LlmError, LlmError> | undefined
      /** The `Llm.stream.open` span, when a tracer records spans. */
      let span: Tracer.Span | undefined

      /**
       * The batches of events the consumer was handed, kept by reference (one
       * push per network read), so that a failure after content can carry the
       * text delivered: joined once, on failure.
       */
      const delivered: Array<Array<StreamEvent>> = []

      /** A failure after the commit, noting the text the consumer had received. */
      const afterContent = (error: LlmError): LlmError => {
        const text: Array<string> = []
        for (const events of delivered) {
          for (const event of events) if (event._tag === "TextDelta") text.push(event.text)
        }
        return text.length === 0 ? error : withPartialText(error, text.join(""))
      }

      const endSpan = (exit: Exit.Exit<unknown, unknown>) => {
        if (span !== undefined && span.status._tag === "Started") span.end(clock!.unsafeCurrentTimeNanos(), exit)
      }

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

      /**
       * The watchdog's check: the wait until the nearest deadline of the
       * current phase, or, past it, the attempt expired. While opening, it
       * also looks again `idleMillis` from now at the latest: the idle
       * deadline of a stream committed meanwhile cannot come sooner.
       */
      const check = (attempt: Attempt) => (): number | undefined => {
        if (attempt !== current) return undefined
        const at = now()
        if (phase === "opening") {
          const deadline = attempt.start + firstTokenMillis
          if (deadline <= at) return expire(attempt, timeoutError(firstTokenKind, prepared.firstToken))
          return Math.min(deadline, at + idleMillis) - at
        }
        const totalDeadline = attempt.start + totalMillis
        const deadline = Math.min(totalDeadline, lastContent + idleMillis)
        if (deadline > at) return deadline - at
        return expire(
          attempt,
          deadline === totalDeadline ? timeoutError("total", prepared.total) : timeoutError("idle", Duration.millis(idleMillis))
        )
      }

      /** A failure of the transport, unless it is the abort of a passed deadline. */
      const transportError = (attempt: Attempt, context: ErrorContext, cause: unknown, during: string): LlmError =>
        attempt.timedOut ?? connectionError(context, cause, during)

      /**
       * Turns response bytes into events, one pass per network read; stops
       * at the protocol's terminator. The first events it writes commit the
       * attempt: the decoders emit only content (bookkeeping such as
       * message_start, role-only chunks and pings emits nothing), so the
       * commit point is what the model produced. A failure the bytes reveal
       * (an in-band error, an undecodable event, a cut-off reply) comes after
       * the events decoded before it, however the reads cut them.
       */
      const decoder = (attempt: Attempt, context: ErrorContext, body: BodyReader): BodyDecoder<A> => {
        const reader = new EventReader(codec.streamDecoder(context), context, defaultMaxEventSize, codec.decodeResponse)
        let received = 0
        const emit = (events: Array<StreamEvent>) => {
          const at = now()
          lastContent = at
          if (phase === "opening") {
            phase = "streaming"
            firstContent = at
            endSpan(Exit.void)
          }
          delivered.push(events)
          const out = project(events)
          return out.length === 0 ? Channel.void : Channel.write(Chunk.unsafeFromArray(out))
        }
        /** The events decoded before `error` reach the consumer (committing the attempt if there are any), then the error. */
        const failAfter = (events: Array<StreamEvent>, error: LlmError) =>
          events.length === 0 ? Channel.fail(error) : Channel.zipRight(emit(events), Channel.fail(error))
        const end = (events: Array<StreamEvent>) => {
          if (attempt.timedOut !== undefined) return Channel.fail(attempt.timedOut)
          const ended = reader.end()
          const all = events.length === 0 ? ended.events : events.concat(ended.events)
          if (isFailure(ended.finish)) return failAfter(all, ended.finish)
          attempt.completed = true
          all.push(finishEvent(ended.finish))
          return emit(all)
        }
        const read: BodyDecoder<A> = Channel.suspend(() => {
          const got = body.poll()
          if (got === undefined) return waitThenRead
          // a deadline that passed while the consumer was busy fails the stream at its next read
          if (attempt.timedOut !== undefined) return Channel.fail(attempt.timedOut)
          if (got === null) return end([])
          if (!Array.isArray(got)) return Channel.fail(transportError(attempt, context, got.cause, "mid-stream"))
          let events: Array<StreamEvent> = []
          for (const piece of got) {
            received += piece.length
            if (received > maxResponseBytes) {
              return failAfter(events, responseError(context, `the response body exceeds ${maxResponseBytes} bytes`))
            }
            const fed = reader.feed(piece)
            if (fed.length > 0) events = events.length === 0 ? fed : events.concat(fed)
            const failure = reader.failure
            if (failure !== undefined) return failAfter(events, failure)
          }
          if (reader.done) return end(events)
          return events.length === 0 ? read : Channel.zipRight(emit(events), read)
        })
        const waitThenRead = Channel.zipRight(Channel.fromEffect(body.ready), read)
        return read
      }

      /** Sends one attempt; returns its answer, ready to be read. */
      const openAttempt = (attempt: Attempt) =>
        Effect.flatMap(startWatchdog(clock!, check(attempt)), (stop) => {
          attempt.stopWatchdog = stop
          return send(
            prepared.request,
            attempt.abort,
            (error) => transportError(attempt, baseContext, error.cause, "before the response")
          )
        }).pipe(Effect.flatMap((response) => {
          requestId = requestIdOf(baseContext, response.headers)
          const context: ErrorContext = { ...baseContext, requestId }
          const contentType = response.headers["content-type"] ?? ""
          if (contentType.includes("text/html")) {
            const got = quote(context, contentType, quoteLimits.header)
            return Effect.fail(responseError(context, `expected an event stream, got ${got}`, response.status))
          }
          return Effect.succeed({ response, context })
        }), Effect.mapError((error) => attempt.timedOut ?? error))

      /** One attempt as a channel: the request, then its events; released however it ends. */
      const attemptChannel = (
        observe: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
      ): Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown> =>
        Channel.unwrap(Effect.map(Scope.make(), (abort) => {
          attempts++
          const attempt: Attempt = { start: now(), abort, timedOut: undefined, completed: false, stopWatchdog: () => {} }
          current = attempt
          phase = "opening"
          requestId = undefined
          return Channel.ensuring(
            Channel.flatMap(
              Channel.fromEffect(observe(openAttempt(attempt))),
              ({ context, response }) => decoder(attempt, context, response.reader)
            ),
            release(attempt)
          )
        }))

      /** Attempts until one commits; a failure after the commit, or one the policy gives up on, ends the stream. */
      const attemptsFrom = (
        observe: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
      ): Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown> =>
        Channel.catchAll(attemptChannel(observe), (error) => {
          if (phase === "streaming") return Channel.fail(afterContent(error))
          const next = Effect.suspend(() => {
            if (driver === undefined) return Effect.map(Schedule.driver(retryPolicy), (made) => (driver = made))
            return Effect.succeed(driver)
          }).pipe(
            Effect.flatMap((driver) => driver.next(error)),
            Effect.catchAll(() => {
              endSpan(Exit.fail(error))
              return Effect.fail(error)
            })
          )
          return Channel.flatMap(Channel.fromEffect(next), () => attemptsFrom(observe))
        })

      /**
       * Reads the clock, then runs the attempts: under Effect's built-in
       * tracer with tracing off (no span is made), else inside an `Llm.stream.open`
       * span that ends at the commit, at the last failure, or when the
       * consumer stops listening.
       */
      const run = Channel.unwrap(Effect.clockWith((made) =>
        Effect.map(Effect.tracer, (tracer) => {
          clock = made
          started = now()
          if (tracer === nativeTracer) {
            return attemptsFrom((effect) => Effect.withTracerEnabled(effect, false))
          }
          return Channel.flatMap(
            Channel.fromEffect(Effect.makeSpan("Llm.stream.open", { attributes: spanAttributes })),
            (made) => {
              span = made
              return Channel.ensuringWith(
                attemptsFrom((effect) => Effect.withParentSpan(effect, made)),
                (exit) => Effect.sync(() => endSpan(exit))
              )
            }
          )
        })
      ))
      return Stream.fromChannel(run)
    }

    return { provider, model: config.model, complete, stream } satisfies Llm.Service
  })

/**
 * One streamed call: attempts until one yields its first events (the
 * consumer has seen nothing before, so retrying is safe), then that
 * attempt's events. Each attempt is one channel, response bytes → decoder →
 * consumer, with no fiber, queue or race per read: a watchdog per attempt
 * waits for the next deadline (first token, total, idle) and, when one
 * passes, records which and aborts the request, so the pending send or read
 * fails at once and that failure becomes the `LlmTimeoutError`.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import type * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import { identity } from "effect/Function"
import type * as MetricLabel from "effect/MetricLabel"
import type * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import type { DecodedFinish, WireCodec } from "../codecs/WireCodec.js"
import type { LlmError, TimeoutKind } from "../errors.js"
import type { CompletionOptions } from "../Llm.js"
import { StreamEvent } from "../Reply.js"
import { captureContent } from "../Telemetry.js"
import { Usage } from "../Usage.js"
import * as Deadlines from "./deadlines.js"
import {
  addUsage,
  connectionError,
  type ErrorContext,
  quote,
  quoteLimits,
  responseError,
  withPartialText
} from "./errorFactory.js"
import { defaultMaxEventSize, EventReader } from "./eventReader.js"
import { streamedOutput } from "./genAiMessages.js"
import * as Instrumentation from "./instrumentation.js"
import { type Projection, written } from "./projection.js"
import type { Limiter, Permit } from "./rateLimiter.js"
import { requestIdOf } from "./responseBody.js"
import * as Retry from "./retry.js"
import { attr } from "./semconv.js"
import { annotate, nativeTracer } from "./tracing.js"
import type { BodyReader, Request, Response, TransportError } from "./transport.js"
import * as Trusted from "./trustedClass.js"

/** What a session needs from its provider, built once per layer. */
export interface Endpoint {
  readonly codec: WireCodec
  /** Whom errors name, and the secrets they redact. */
  readonly context: ErrorContext
  /** The largest response body accepted. */
  readonly maxResponseBytes: number
  readonly retryPolicy: Schedule.Schedule<unknown, LlmError>
  /** What its calls report: span attributes, metric labels. */
  readonly instrument: Instrumentation.Instrument
  /** The usage with its cost (the provider's, or the price table's for the model the server named, else the one asked for). */
  readonly price: (usage: Usage, reportedModel: string | undefined) => Usage
  /**
   * Sends one attempt, aborted by its `deadline`, and hands a 2xx response
   * to `then` in the same step; a non-2xx status fails with its `LlmError`.
   */
  readonly send: <A>(
    request: Request,
    deadline: Deadlines.Deadline,
    onTransport: (error: TransportError) => LlmError,
    then: (response: Response) => Effect.Effect<A, LlmError>
  ) => Effect.Effect<A, LlmError>
  /** Whether its attempts are aborted through a scope of their own (a transport without `sendDirect`). */
  readonly scoped: boolean
  /** The backend's rate limits, when it has any: each attempt waits for its budget within its first-token deadline. */
  readonly limiter?: Limiter | undefined
}

/** One call, ready to send: what it asks for (as its span records it), its request and its deadlines. */
export interface Call {
  readonly info: Instrumentation.CallInfo
  readonly request: Request
  readonly total: Duration.Duration
  /** At most `total`. */
  readonly firstToken: Duration.Duration
  readonly idle: Duration.DurationInput | undefined
  /** The call's options, for a codec whose decoding depends on them (see `WireCodec.streamDecoder`). */
  readonly options?: CompletionOptions | undefined
}

/** Where a session stands, in one object (its clock read once, when it starts). */
interface SessionState {
  readonly clock: Clock.Clock
  /** When the session started (clock millis). */
  readonly started: number
  attempts: number
  /** The attempt under way (an older attempt's watchdog stands down). */
  current: Deadlines.Deadline | undefined
  /** When the first content arrived: until then the session may retry; after, it is committed. */
  firstContent: number | undefined
  /** When the last content arrived. */
  lastContent: number
  /** The answering attempt's request id. */
  requestId: string | undefined
  /** The call's `chat {model}` span, when a tracer records spans: from the start to the end of the stream. */
  span: Tracer.Span | undefined
  /** The reply's end (`Finish`), once decoded. */
  finish: DecodedFinish | undefined
  /** Whether the session's end was reported (its span ended, its metrics recorded): once, at the final failure or the end. */
  reported: boolean
  /** Whether the span records content (`Telemetry.captureContent`, read when the session starts). */
  readonly capture: boolean
  /** The fiber's own metric tags, read when the session starts. */
  readonly metricTags: ReadonlyArray<MetricLabel.MetricLabel>
  /**
   * The text deltas the consumer was handed, so that a failure after content
   * can carry the text delivered: joined once, on failure. Only the strings
   * are kept, not the events (a long stream holds no event it handed over).
   */
  readonly texts: Array<string>
  /** The batches of events the consumer was handed, by reference, when the span records content (else empty). */
  readonly delivered: Array<Array<StreamEvent>>
  readonly retries: Retry.Retrier<LlmError>
  /** The usage the attempt under way reported so far (its decoder's), once it has a body. */
  attemptUsage: (() => Usage | undefined) | undefined
  /** What the attempts that failed reported before failing, priced and summed: billed, though they did not answer. */
  failedUsage: Usage | undefined
  /** The rate limit's permit of the attempt under way, settled with the usage it reports. */
  permit?: Permit | undefined
}

/** A session: its call, what its consumer gets of each batch, its limits and its state. */
interface Session<A> {
  readonly endpoint: Endpoint
  readonly call: Call
  readonly project: Projection<A>
  readonly limits: Deadlines.StreamLimits
  /** The kind of timeout a missed first token is: `total` when its deadline is the total one. */
  readonly firstTokenKind: TimeoutKind
  readonly state: SessionState
}

/** One attempt's output (its events, or what a projection keeps of them), one batch of network reads at a time. */
type BodyDecoder<A> = Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, void, unknown>

/** An attempt's channel, run in `observe` (its span, or tracing off). */
type Observe = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

const isFailure = <A extends object>(value: A | LlmError): value is LlmError => "_tag" in value

const now = (state: SessionState) => state.clock.unsafeCurrentTimeMillis()

/** A failure after the commit, noting the text the consumer had received. */
const afterContent = (state: SessionState, error: LlmError): LlmError => {
  return state.texts.length === 0 ? error : withPartialText(error, state.texts.join(""))
}

const finishEvent = ({ endpoint, state }: Session<unknown>, finish: DecodedFinish) => {
  const usage = endpoint.price(finish.usage, finish.model)
  // telemetry reads the reply's usage, priced as the consumer gets it
  state.finish = { ...finish, usage }
  return StreamEvent.Finish({
    finishReason: finish.finishReason,
    usage,
    model: finish.model,
    metadata: Trusted.responseMetadata({
      provider: endpoint.context.provider,
      ...(finish.responseId === undefined ? {} : { responseId: finish.responseId }),
      ...(state.requestId === undefined ? {} : { requestId: state.requestId }),
      attempts: state.attempts,
      latencyMillis: now(state) - state.started,
      ...(state.firstContent === undefined ? {} : { firstTokenMillis: state.firstContent - state.started }),
      ...(finish.timings === undefined ? {} : { timings: finish.timings }),
      ...(state.failedUsage === undefined ? {} : { failedUsage: state.failedUsage })
    })
  })
}

/** The watchdog's check of `attempt`: the wait until its next deadline, or, past it, the attempt expired. */
const check = (session: Session<unknown>, attempt: Deadlines.Deadline) => (): number | undefined => {
  const { call, endpoint, limits, state } = session
  if (attempt !== state.current) return undefined
  const next = Deadlines.nextStreamDeadline(
    limits,
    attempt.start,
    state.firstContent === undefined ? undefined : state.lastContent,
    now(state)
  )
  if (typeof next === "number") return next
  const timeout = next === "firstToken"
    ? Deadlines.timeoutError(endpoint.context, session.firstTokenKind, call.firstToken)
    : next === "total"
    ? Deadlines.timeoutError(endpoint.context, "total", call.total)
    : Deadlines.timeoutError(endpoint.context, "idle", Duration.millis(limits.idle))
  return Deadlines.expire(attempt, timeout)
}

/** A failure of the transport, unless it is the abort of a passed deadline. */
const transportError = (attempt: Deadlines.Deadline, context: ErrorContext, cause: unknown, during: string): LlmError =>
  attempt.timedOut ?? connectionError(context, cause, during)

/**
 * Turns response bytes into events, one pass per network read; stops at the
 * protocol's terminator. The first events it writes commit the attempt: the
 * decoders emit only content (bookkeeping such as message_start, role-only
 * chunks and pings emits nothing), so the commit point is what the model
 * produced. A failure the bytes reveal (an in-band error, an undecodable
 * event, a cut-off reply) comes after the events decoded before it, however
 * the reads cut them.
 */
const decoder = <A>(
  session: Session<A>,
  attempt: Deadlines.Deadline,
  context: ErrorContext,
  body: BodyReader
): BodyDecoder<A> => {
  const { endpoint: { codec, maxResponseBytes }, project, state } = session
  const options = session.call.options
  const reader = new EventReader(
    codec.streamDecoder(context, options),
    context,
    defaultMaxEventSize,
    options === undefined ? codec.decodeResponse : (body, at) => codec.decodeResponse(body, at, options)
  )
  state.attemptUsage = () => reader.usage()
  let received = 0
  /**
   * Until the consumer is handed something, a read is decoded only up to its
   * first events, which go out at once, alone; the rest of the read follows
   * in the next step (`pending`, and the text the reader holds). A whole
   * reply arriving in one read so reaches the consumer's first delta without
   * waiting for every event of it to be decoded; later reads go out whole.
   */
  let early = true
  /** The pieces of a read left after its first events went out early. */
  let pending: Array<Uint8Array> | undefined
  const firstContentAt = (at: number) => {
    if (state.firstContent === undefined) {
      state.firstContent = at
      state.span?.attribute(attr.responseTimeToFirstChunk, (at - state.started) / 1000)
    }
  }
  const emit = (events: Array<StreamEvent>) => {
    const at = now(state)
    state.lastContent = at
    firstContentAt(at)
    if (state.capture) state.delivered.push(events)
    for (const event of events) if (event._tag === "TextDelta") state.texts.push(event.text)
    const writes = written(project(events))
    if (writes === undefined) return Channel.void
    early = false
    return writes
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
    // a reply whose content arrived in the read that ended it: its first token came with that read
    if (all.length > 0) firstContentAt(now(state))
    state.permit?.settle(ended.finish.usage)
    all.push(finishEvent(session, ended.finish))
    return emit(all)
  }
  const read: BodyDecoder<A> = Channel.suspend(() => {
    let got = pending
    pending = undefined
    if (got === undefined) {
      const polled = body.poll()
      if (polled === undefined) return waitThenRead
      // a deadline that passed while the consumer was busy fails the stream at its next read
      if (attempt.timedOut !== undefined) return Channel.fail(attempt.timedOut)
      if (polled === null) return end([])
      if (!Array.isArray(polled)) return Channel.fail(transportError(attempt, context, polled.cause, "mid-stream"))
      got = polled
    } else if (attempt.timedOut !== undefined) return Channel.fail(attempt.timedOut)
    let events: Array<StreamEvent> = reader.holding ? reader.rest(early) : []
    for (let i = 0;; i++) {
      const failure = reader.failure
      if (failure !== undefined) return failAfter(events, failure)
      if (early && events.length > 0 && !reader.done && (reader.holding || i < got.length)) {
        pending = i === 0 ? got : got.slice(i)
        return Channel.zipRight(emit(events), read)
      }
      if (i === got.length) break
      const piece = got[i]!
      received += piece.length
      if (received > maxResponseBytes) {
        return failAfter(events, responseError(context, `the response body exceeds ${maxResponseBytes} bytes`))
      }
      const fed = reader.feed(piece, early)
      if (fed.length > 0) events = events.length === 0 ? fed : events.concat(fed)
    }
    if (reader.done) return end(events)
    return events.length === 0 ? read : Channel.zipRight(emit(events), read)
  })
  const waitThenRead = Channel.zipRight(Channel.fromEffect(body.ready), read)
  return read
}

/** Waits for the attempt's rate-limit budget (within its first-token deadline), if the backend has one. */
const admit = ({ call, endpoint: { limiter }, state }: Session<unknown>): Effect.Effect<void, LlmError> =>
  limiter === undefined ? Effect.void : Effect.map(
    limiter.admit(call.request.body?.length ?? 0, call.info.options.maxTokens, Duration.toMillis(call.firstToken)),
    (permit) => {
      state.permit = permit
    }
  )

/**
 * Sends one attempt, its watchdog started first; returns its answer, ready
 * to be read. Under a rate limit, the wait for the budget comes before the send.
 */
const openAttempt = (session: Session<unknown>, attempt: Deadlines.Deadline) => {
  const { call, endpoint, state } = session
  const { context } = endpoint
  const sent = endpoint.send(
    call.request,
    attempt,
    (error) => transportError(attempt, context, error.cause, "before the response"),
    (response) => {
      state.requestId = requestIdOf(context, response.headers)
      const answering: ErrorContext = { ...context, requestId: state.requestId }
      const contentType = response.headers["content-type"] ?? ""
      if (contentType.includes("text/html")) {
        const got = quote(answering, contentType, quoteLimits.header)
        return Effect.fail(responseError(answering, `expected an event stream, got ${got}`, response.status))
      }
      return Effect.succeed({ response, context: answering })
    }
  )
  return Effect.mapError(
    Deadlines.watching(
      attempt,
      state.clock,
      check(session, attempt),
      endpoint.limiter === undefined ? sent : Effect.zipRight(admit(session), sent)
    ),
    (error) => attempt.timedOut ?? error
  )
}

/** One attempt as a channel: the request, then its events (released by the session, however it ends). */
const attemptChannel = <A>(
  session: Session<A>,
  observe: Observe
): Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown> => {
  const start = (abort: Scope.CloseableScope | undefined) => {
    const { state } = session
    state.attempts++
    const attempt = Deadlines.make(abort, now(state))
    state.current = attempt
    state.requestId = undefined
    state.attemptUsage = undefined
    state.permit = undefined
    // released by the session: before its retry or its failure (`attemptsFrom`), else with the stream (`open`)
    return Channel.flatMap(
      Channel.fromEffect(observe(openAttempt(session, attempt))),
      ({ context, response }) => decoder(session, attempt, context, response.reader)
    )
  }
  return session.endpoint.scoped
    ? Channel.unwrap(Effect.map(Scope.make(), start))
    : Channel.suspend(() => start(undefined))
}

/** Adds what the failed attempt reported (priced) to the session's failed usage: billed, whether or not it is retried. */
const noteFailedUsage = ({ endpoint, state }: Session<unknown>): void => {
  const sofar = state.attemptUsage?.()
  state.attemptUsage = undefined
  state.permit?.settle(sofar)
  state.permit = undefined
  if (sofar === undefined) return
  const priced = endpoint.price(sofar, undefined)
  state.failedUsage = state.failedUsage === undefined ? priced : Usage.add(state.failedUsage, priced)
}

/**
 * Releases the session's current attempt, if it was not: at once when that
 * takes no effect, else in the returned effect.
 */
const releaseCurrent = ({ state }: Session<unknown>): Effect.Effect<void> | undefined =>
  state.current === undefined ? undefined : Deadlines.releaseOrEffect(state.current)

/** `next`, after the effect that released the current attempt, if its release takes one. */
const afterRelease = <A>(
  session: Session<unknown>,
  next: Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown>
) => {
  const released = releaseCurrent(session)
  return released === undefined ? next : Channel.zipRight(Channel.fromEffect(released), next)
}

/**
 * Attempts until one commits; a failure after the commit, or one the policy
 * gives up on, ends the stream. A failed attempt is released before its
 * retry or the failure.
 */
const attemptsFrom = <A>(
  session: Session<A>,
  observe: Observe
): Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown> =>
  Channel.catchAll(attemptChannel(session, observe), (error) => {
    const { state } = session
    noteFailedUsage(session)
    if (state.firstContent !== undefined) {
      return afterRelease(session, finalFailure(session, addUsage(afterContent(state, error), state.failedUsage)))
    }
    const next = state.retries.next(error).pipe(
      Effect.mapError((error) => addUsage(error, state.failedUsage)),
      Effect.tapError((error) => reported(session, Exit.fail(error)))
    )
    return afterRelease(session, Channel.flatMap(Channel.fromEffect(next), () => attemptsFrom(session, observe)))
  })

/**
 * The stream's failure, reported first: when a fallback moves on, the next
 * backend runs before this channel is released, and its time is not this call's.
 */
const finalFailure = (session: Session<unknown>, error: LlmError) =>
  Channel.zipRight(Channel.fromEffect(reported(session, Exit.fail(error))), Channel.fail(error))

/** How a session ended, as its metrics record it. */
const endingOf = (state: SessionState, exit: Exit.Exit<unknown, unknown>): Instrumentation.Ending => {
  if (state.finish !== undefined) {
    const { finish } = state
    return {
      _tag: "Answered",
      reply: {
        model: finish.model,
        responseId: finish.responseId,
        finishReason: finish.finishReason,
        usage: finish.usage
      }
    }
  }
  if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) {
    return { _tag: "Failed", errorType: Instrumentation.errorTypeOf(exit.cause as Cause.Cause<LlmError>) }
  }
  return { _tag: "Interrupted" }
}

/** The end of a session, reported once: its span annotated and ended (when traced), its metrics recorded. */
const reported = (session: Session<unknown>, exit: Exit.Exit<unknown, unknown>) =>
  Effect.sync(() => {
    const { endpoint, state } = session
    if (state.reported) return
    state.reported = true
    const ending = endingOf(state, exit)
    const end = now(state)
    const firstChunk = state.firstContent === undefined ? undefined : state.firstContent - state.started
    const span = state.span
    if (span !== undefined) {
      if (ending._tag === "Answered") {
        Instrumentation.annotateReply(span, ending.reply)
        if (state.capture) {
          span.attribute(attr.outputMessages, streamedOutput(state.delivered, ending.reply.finishReason))
        }
      } else if (ending._tag === "Failed") span.attribute(attr.errorType, ending.errorType)
      if (span.status._tag === "Started") span.end(state.clock.unsafeCurrentTimeNanos(), exit)
    }
    Instrumentation.record(endpoint.instrument, ending, end - state.started, firstChunk, state.metricTags)
  })

/** The session's one finalizer: its current attempt released (if it was not), then its end reported. */
const ended = (session: Session<unknown>) => (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
  const { current } = session.state
  return current === undefined ? reported(session, exit) : Deadlines.releasedThen(current, reported(session, exit))
}

/**
 * The stream of one call, whose consumer gets `project` of each batch of
 * events. It reads the clock, then runs the attempts: under Effect's built-in
 * tracer as they are (nothing below makes a span then), else inside the call's
 * `chat {model}` client span, which covers the whole stream, from the request
 * to the last event, the failure, or the consumer stopping. Its end records
 * the call's metrics.
 */
export const open = <A>(endpoint: Endpoint, call: Call, project: Projection<A>): Stream.Stream<A, LlmError> =>
  Stream.fromChannel(Channel.unwrap(Effect.withFiberRuntime((fiber) => {
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const started = clock.unsafeCurrentTimeMillis()
    const traced = fiber.currentTracer !== nativeTracer
    const state: SessionState = {
      reported: false,
      capture: traced && fiber.getFiberRef(captureContent),
      metricTags: fiber.getFiberRef(FiberRef.currentMetricLabels),
      clock,
      started,
      attempts: 0,
      current: undefined,
      firstContent: undefined,
      lastContent: 0,
      requestId: undefined,
      span: undefined,
      finish: undefined,
      texts: [],
      delivered: [],
      attemptUsage: undefined,
      failedUsage: undefined,
      // a retry is recorded on the span, made below once the session exists
      retries: Retry.retrier(
        endpoint.retryPolicy,
        (notice) => Instrumentation.retried(endpoint.instrument, state.span)(notice)
      )
    }
    const session: Session<A> = {
      endpoint,
      call,
      project,
      limits: {
        firstToken: Duration.toMillis(call.firstToken),
        total: Duration.toMillis(call.total),
        idle: call.idle === undefined ? Infinity : Duration.toMillis(Duration.decode(call.idle))
      },
      firstTokenKind: Duration.lessThan(call.firstToken, call.total) ? "firstToken" : "total",
      state
    }
    if (!traced) return Effect.succeed(Channel.ensuringWith(attemptsFrom(session, identity), ended(session)))
    return Effect.map(
      Effect.makeSpan(endpoint.instrument.spanName, { kind: "client", captureStackTrace: false }),
      (span) => {
        annotate(span, Instrumentation.startAttributes(endpoint.instrument, call.info, fiber))
        state.span = span
        return Channel.ensuringWith(
          attemptsFrom(session, (effect) => Effect.withParentSpan(effect, span)),
          ended(session)
        )
      }
    )
  })))

/**
 * Local-to-cloud fallback: several backends composed into one `Llm`, with a
 * circuit breaker per backend.
 *
 * A call goes to the first backend whose breaker is closed. A transient
 * failure (after that backend's own retries; at once for a refused
 * connection) moves the call to the next backend. A stream falls back only
 * until its first event reaches the consumer; after that a failure carries the
 * text already delivered, or, in continuation mode, the next backend continues
 * from that text and the consumer never sees it twice.
 *
 * A backend's breaker opens after `failureThreshold` consecutive transient
 * failures and skips it for `cooldown`; then one call is its trial (others
 * still skip it). The trial ends on every exit: an answer, or a stream that
 * delivered content before its consumer stopped, closes the breaker; a
 * transient failure reopens it; anything else (interruption, a consumer that
 * stopped before content, a non-transient error) leaves it to the next call
 * to try again.
 *
 * Built by hand rather than on `ExecutionPlan`: the plan retries an effect
 * against layers, but cannot express the breaker state shared across calls,
 * the first-event commit point of streams, continuation, or the per-backend
 * record in `metadata.fallbacks`.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import { isTransient, type LlmError, LlmProviderError } from "../errors.js"
import { addUsage, withPartialText } from "../internal/errorFactory.js"
import * as Metrics from "../internal/metrics.js"
import { projectable, type Projection, written } from "../internal/projection.js"
import * as Retry from "../internal/retry.js"
import { attr, event, fallbackSpan } from "../internal/semconv.js"
import * as SharedBreaker from "../internal/sharedBreaker.js"
import { nanosNow, recordingSpan, spanned, spannedChannel } from "../internal/tracing.js"
import { type CompletionOptions, Llm } from "../Llm.js"
import { AssistantMessage, type Message } from "../Message.js"
import { CompletionResult, ResponseMetadata, StreamEvent } from "../Reply.js"
import * as SharedState from "../SharedState.js"
import { Usage } from "../Usage.js"

/**
 * When a backend is taken out of rotation, and for how long.
 *
 * @since 0.1.0
 */
export interface CircuitBreakerOptions {
  /** Consecutive transient failures that open the breaker (default 3). */
  readonly failureThreshold?: number | undefined
  /** How long an open breaker skips its backend before letting one trial call through (default 30 s). */
  readonly cooldown?: Duration.DurationInput | undefined
}

/**
 * How the chain behaves.
 *
 * @since 0.1.0
 */
export interface FallbackOptions {
  /** Also move on after non-transient errors (auth, invalid request). Default false. */
  readonly fallThroughOnAnyError?: boolean | undefined
  /** Per-backend circuit breakers; `false` turns them off. */
  readonly circuitBreaker?: CircuitBreakerOptions | false | undefined
  /**
   * Streams: when a backend fails after text was delivered, ask the next one
   * to continue from that text (as an assistant prefix). Default false.
   */
  readonly continuation?: boolean | undefined
}

/**
 * One backend of a chain, with an optional health probe asked before its breaker's trial call.
 *
 * @since 0.1.0
 */
export interface Backend {
  readonly llm: Llm.Service
  /**
   * Its breaker's name across processes, when `SharedState` is Redis
   * (default `provider:model`; a name given twice in a chain is told apart
   * by its position, `name#2`).
   */
  readonly name?: string | undefined
  /**
   * Asked before an open breaker's trial call (e.g. `Local.health`): failing,
   * it reopens the breaker and the call skips the backend; passing, it lets
   * the trial call through, whose end decides. Default: the trial call alone.
   */
  readonly probe?: Effect.Effect<unknown, unknown> | undefined
}

/**
 * How a call on one backend ended: with an answer (a result, or a stream's
 * `Finish`), with the backend's typed error, with its probe failing, or cut
 * off by something else (the consumer stopped, interruption, a defect), after
 * the backend streamed content or before.
 */
type End =
  | { readonly _tag: "Answered" }
  | { readonly _tag: "Failed"; readonly error: LlmError }
  | { readonly _tag: "ProbeFailed" }
  | { readonly _tag: "Stopped"; readonly content: boolean }

const answered: End = { _tag: "Answered" }
const probeFailed: End = { _tag: "ProbeFailed" }
const stoppedBeforeContent: End = { _tag: "Stopped", content: false }
const stoppedAfterContent: End = { _tag: "Stopped", content: true }

/** What a call's end says about its backend's health. */
type Health = "healthy" | "unhealthy" | "unknown"

/**
 * The one place deciding what an end says about the backend: an answer, or
 * content streamed before the consumer stopped, shows it healthy; a transient
 * error or a failed probe shows it unhealthy; a non-transient error (auth,
 * invalid request), a refusal of the backend's own rate limit before
 * sending, or a call cut off before any content says nothing.
 */
const healthOf = (end: End): Health => {
  switch (end._tag) {
    case "Answered":
      return "healthy"
    case "Failed":
      // a call its own rate limit refused before sending says nothing of the backend
      return isTransient(end.error) && !Retry.refusedBeforeSending(end.error) ? "unhealthy" : "unknown"
    case "ProbeFailed":
      return "unhealthy"
    case "Stopped":
      return end.content ? "healthy" : "unknown"
  }
}

/** How a complete call's exit ended. */
const endOf = (exit: Exit.Exit<unknown, LlmError>): End => {
  if (Exit.isSuccess(exit)) return answered
  const failure = Cause.failureOption(exit.cause)
  return Option.isSome(failure) ? { _tag: "Failed", error: failure.value } : stoppedBeforeContent
}

/**
 * A breaker's state: closed (counting consecutive failures), open (skipping
 * its backend until the cooldown from `since` is over), or trying (the one
 * trial call after the cooldown is in flight; other calls skip). Shared
 * through Redis, the trial may be another process's: `until` is when this
 * process gives up waiting for its end (its holder may have died) and asks
 * for the trial itself.
 */
type BreakerState =
  | { readonly _tag: "Closed"; readonly failures: number }
  | { readonly _tag: "Open"; readonly since: number }
  | { readonly _tag: "Trying"; readonly since: number; readonly until?: number | undefined }

const closed: BreakerState = { _tag: "Closed", failures: 0 }

/** A breaker state as telemetry names it, and its gauge value. */
const stateNames = { Closed: ["closed", 0], Trying: ["half_open", 1], Open: ["open", 2] } as const

/** What a breaker reports of its changes: its backend's name and its gauge's labels (none when breakers are off). */
interface BreakerReport {
  readonly backend: string
  readonly labels: ReadonlyArray<MetricLabel.MetricLabel> | undefined
}

/** How a breaker shares its state with other processes: its Redis side, and how its changes are sent in the background. */
interface Sharing {
  readonly redis: SharedBreaker.SharedBreaker
  readonly fork: <A>(effect: Effect.Effect<A>) => Fiber.RuntimeFiber<A>
}

/**
 * A circuit breaker over the layer's clock (a `TestClock` in tests). Shared,
 * it mirrors the state Redis holds, changed by what the other processes
 * publish: a closed breaker lets calls through without asking Redis; only the
 * trial is asked for (a lock), and only changes of state are sent.
 */
class Breaker implements SharedBreaker.Listener {
  private state: BreakerState = closed
  private sharing: Sharing | undefined
  /** The last change sent to Redis: the next one, and a trial's request, wait for it, so that they arrive in order. */
  private sending: Fiber.Fiber<unknown> | undefined

  constructor(
    readonly threshold: number,
    readonly cooldownMillis: number,
    readonly now: () => number,
    readonly report: BreakerReport
  ) {
    if (report.labels !== undefined) Metrics.breakerState.unsafeUpdate(0, report.labels)
  }

  /** Shares the breaker through Redis from now on. */
  share(sharing: Sharing): void {
    this.sharing = sharing
  }

  /**
   * Moves to `next`; a change of state (closed, half-open, open) sets the
   * backend's gauge and, when the call is traced, is an `effect_llm.breaker`
   * event on its span.
   */
  private move(next: BreakerState, span: Tracer.Span | undefined): void {
    const [from] = stateNames[this.state._tag]
    const [to, value] = stateNames[next._tag]
    this.state = next
    if (from === to) return
    if (this.report.labels !== undefined) Metrics.breakerState.unsafeUpdate(value, this.report.labels)
    span?.event(event.breaker, BigInt(this.now()) * 1_000_000n, {
      [attr.backend]: this.report.backend,
      [attr.breakerFrom]: from,
      [attr.breakerTo]: to
    })
  }

  /** Open with `remaining` of its cooldown left. */
  private openFor(remaining: number): BreakerState {
    return { _tag: "Open", since: this.now() - this.cooldownMillis + remaining }
  }

  /**
   * Lets a call through (the trial, once an open breaker's cooldown is over),
   * or skips it (undefined). Shared, the trial is asked of Redis, which lets
   * one process make it; this process's other calls skip meanwhile.
   */
  admit(span: Tracer.Span | undefined): Effect.Effect<Pass | undefined> {
    const state = this.state
    switch (state._tag) {
      case "Closed":
        return Effect.succeed(new Pass(this, false, span))
      case "Trying":
        if (state.until === undefined || this.now() < state.until) return skip
        break
      case "Open":
        if (this.now() < state.since + this.cooldownMillis) return skip
    }
    this.move({ _tag: "Trying", since: state.since }, span)
    const sharing = this.sharing
    if (sharing === undefined) return Effect.succeed(new Pass(this, true, span))
    const sent = this.sending
    return Effect.map(
      sent === undefined ? sharing.redis.trial : Effect.zipRight(Fiber.await(sent), sharing.redis.trial),
      (answer) => {
        // Redis down: this process's own trial
        if (Option.isNone(answer)) return new Pass(this, true, span)
        const admission = answer.value
        switch (admission._tag) {
          case "Mine":
            return new Pass(this, true, span, admission.token, sharing.redis.hold(admission.token))
          case "Closed":
            this.move(closed, span)
            return new Pass(this, false, span)
          case "Open":
            this.move(this.openFor(admission.remaining), span)
            return undefined
          case "Trying":
            this.move({ _tag: "Trying", since: state.since, until: this.now() + admission.remaining }, span)
            return undefined
        }
      }
    )
  }

  /** Sends a change to Redis after the ones before it; the pass that made it waits for it when it is released. */
  private send(pass: Pass, change: (redis: SharedBreaker.SharedBreaker) => Effect.Effect<unknown>): void {
    const sharing = this.sharing
    if (sharing === undefined) return
    const before = this.sending
    const sending = sharing.fork(
      before === undefined ? change(sharing.redis) : Effect.zipRight(Fiber.await(before), change(sharing.redis))
    )
    this.sending = sending
    pass.sent = sending
  }

  /** Opens the breaker for every process; when another opened it first, its cooldown is the one that counts. */
  private sendOpen(pass: Pass): void {
    this.send(pass, (redis) =>
      Effect.map(redis.open(pass.token), (remaining) => {
        if (Option.isSome(remaining) && remaining.value < this.cooldownMillis && this.state._tag === "Open") {
          this.move(this.openFor(remaining.value), undefined)
        }
      }))
  }

  /**
   * Moves the breaker on a call's health: healthy closes it; unhealthy
   * reopens it after a trial, or counts towards the threshold when closed; a
   * trial that said nothing leaves it awaiting its trial, so the next call
   * tries again. A call let through before the breaker opened does not
   * reopen it, nor end a trial it did not make. Shared, each change of state
   * is sent to Redis (consecutive failures are counted by each process).
   */
  settle(pass: Pass, health: Health): void {
    const { span, trial } = pass
    const state = this.state
    switch (health) {
      case "healthy":
        this.move(closed, span)
        if (trial || state._tag !== "Closed") this.send(pass, (redis) => redis.close)
        return
      case "unhealthy":
        if (trial) {
          this.move({ _tag: "Open", since: this.now() }, span)
          this.sendOpen(pass)
        } else if (state._tag === "Closed") {
          if (state.failures + 1 >= this.threshold) {
            this.move({ _tag: "Open", since: this.now() }, span)
            this.sendOpen(pass)
          } else this.move({ _tag: "Closed", failures: state.failures + 1 }, span)
        }
        return
      case "unknown":
        if (trial && state._tag === "Trying") this.move({ _tag: "Open", since: state.since }, span)
        if (pass.token !== undefined) {
          const token = pass.token
          this.send(pass, (redis) => redis.untried(token))
        }
    }
  }

  /** Another process changed the breaker: it closed it, opened it, or gave its trial back (open, cooldown over). */
  heard(remote: SharedBreaker.Remote): void {
    if (remote._tag === "Closed") this.move(closed, undefined)
    else if (remote._tag === "Open") this.move(this.openFor(remote.remaining), undefined)
  }

  /**
   * Takes the state Redis holds (once subscribed, and again after each
   * reconnection), unless this process is making the trial. A breaker Redis
   * holds closed (as a Redis restarted empty does) while this process holds
   * it open stays open until its cooldown is over; its trial then asks Redis.
   */
  get resync(): Effect.Effect<boolean> {
    const sharing = this.sharing
    if (sharing === undefined) return Effect.succeed(true)
    return Effect.map(sharing.redis.read, (answer) => {
      if (Option.isNone(answer)) return false
      const remote = answer.value
      const state = this.state
      if (remote._tag === "Closed" || (state._tag === "Trying" && state.until === undefined)) return true
      this.move(
        remote._tag === "Open"
          ? this.openFor(remote.remaining)
          : { _tag: "Trying", since: this.now(), until: this.now() + remote.remaining },
        undefined
      )
      return true
    })
  }
}

const skip: Effect.Effect<Pass | undefined> = Effect.succeed(undefined)

/**
 * One call let through a breaker. The first end reported settles the
 * breaker; later ones are ignored, so every exit path may report its own
 * and the release of the call reports `Stopped` for whatever ended it otherwise.
 */
class Pass {
  /** Whether the backend streamed content on this call. */
  content = false
  /** The change of state this call sent to Redis, if any: its release waits for it. */
  sent: Fiber.Fiber<unknown> | undefined
  private ended = false

  constructor(
    readonly breaker: Breaker,
    readonly trial: boolean,
    readonly span: Tracer.Span | undefined,
    /** A shared trial's lock. */
    readonly token?: string | undefined,
    /** Stops renewing that lock. */
    private readonly unhold?: (() => void) | undefined
  ) {}

  end(end: End): void {
    if (this.ended) return
    this.ended = true
    this.unhold?.()
    this.breaker.settle(this, healthOf(end))
  }

  /** Ends it, unless already ended, as cut off after or before content. */
  stop(): void {
    this.end(this.content ? stoppedAfterContent : stoppedBeforeContent)
  }
}

/**
 * A record of a backend that did not answer a call.
 *
 * @since 0.1.0
 */
export interface BackendFailure {
  readonly provider: string
  /** The error it failed with; absent when its breaker was open and it was skipped. */
  readonly error?: LlmError | undefined
}

/** What the backends that failed had reported before failing (each error's `usage`), summed; undefined when none did. */
const triedUsage = (tried: ReadonlyArray<BackendFailure>, also?: Usage | undefined): Usage | undefined => {
  const billed = tried.flatMap((failure) => (failure.error?.usage === undefined ? [] : [failure.error.usage]))
  if (also !== undefined) billed.push(also)
  return billed.length === 0 ? undefined : Usage.sum(billed)
}

/** The error a chain ends with, billed also for what the backends tried before it reported. */
const failing = (error: LlmError, tried: ReadonlyArray<BackendFailure>): LlmError => addUsage(error, triedUsage(tried))

/** Notes the backends that were tried, and what they were billed for, in a result's metadata. */
const annotate = (result: CompletionResult, tried: ReadonlyArray<BackendFailure>): CompletionResult => {
  if (tried.length === 0) return result
  const failedUsage = triedUsage(tried, result.metadata.failedUsage)
  return new CompletionResult({
    ...result,
    metadata: new ResponseMetadata({
      ...result.metadata,
      fallbacks: tried.map((failure) => ({
        provider: failure.provider,
        ...(failure.error === undefined ? { skipped: true } : { error: failure.error })
      })),
      ...(failedUsage === undefined ? {} : { failedUsage })
    }, true)
  }, true)
}

/**
 * Builds the fallback `Llm` over already-built backends.
 *
 * @since 0.1.0
 */
export const make = (
  backends: ReadonlyArray<Backend | Llm.Service>,
  options: FallbackOptions = {}
): Effect.Effect<Llm.Service> =>
  Effect.gen(function*() {
    if (backends.length === 0) return yield* Effect.dieMessage("Fallback.make needs at least one backend")
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const breakerOptions = options.circuitBreaker
    const names = new Set<string>()
    const chain = backends.map((backend, index) => {
      const entry: Backend = "llm" in backend ? backend : { llm: backend }
      const name = entry.llm.provider
      const wanted = entry.name ?? `${entry.llm.provider}:${entry.llm.model}`
      const shared = names.has(wanted) ? `${wanted}#${index}` : wanted
      names.add(shared)
      return {
        ...entry,
        shared,
        breaker: breakerOptions === false
          ? new Breaker(Number.POSITIVE_INFINITY, 0, now, { backend: name, labels: undefined })
          : new Breaker(
            breakerOptions?.failureThreshold ?? 3,
            Duration.toMillis(Duration.decode(breakerOptions?.cooldown ?? "30 seconds")),
            now,
            { backend: name, labels: Metrics.labels({ [attr.backend]: name, [attr.backendIndex]: index }) }
          )
      }
    })
    const state = yield* SharedState.current
    if (state._tag === "Redis" && breakerOptions !== false) {
      const redis = yield* SharedBreaker.make(state.connection)
      const runtime = yield* Effect.runtime<never>()
      const fork = Runtime.runFork(runtime)
      for (const link of chain) {
        link.breaker.share({ redis: redis.breaker(link.shared, link.breaker.cooldownMillis, link.breaker), fork })
      }
      const unsubscribe = yield* redis.start
      // built in a scope (as `layer` builds it), it stops listening with it; otherwise with the connection
      const scope = yield* Effect.serviceOption(Scope.Scope)
      if (Option.isSome(scope)) yield* Scope.addFinalizer(scope.value, Effect.sync(unsubscribe))
    }
    type Link = (typeof chain)[number]
    const first = chain[0]!.llm

    /**
     * The options backend `i` gets: a per-call `model` names a model of the
     * primary backend, so only it is sent one; the others use their own.
     * Each backend reads its own `providerOptions` entry.
     */
    const optionsFor = (i: number, callOptions: CompletionOptions | undefined): CompletionOptions | undefined =>
      i === 0 || callOptions?.model === undefined ? callOptions : { ...callOptions, model: undefined }

    /** Whether the call may move past this error to the next backend. */
    const movesOn = (error: LlmError) => options.fallThroughOnAnyError === true || isTransient(error)

    /** Asks a probed backend's probe before its trial call; a failed probe ends the trial, and the call skips it. */
    const cleared = (link: Link, pass: Pass | undefined): Effect.Effect<Pass | undefined> => {
      if (pass === undefined || !pass.trial || link.probe === undefined) return Effect.succeed(pass)
      return Effect.map(Effect.exit(link.probe), (exit) => {
        if (Exit.isSuccess(exit)) return pass
        // an interrupted probe is left to the pass's release: it says nothing
        if (!Exit.isInterrupted(exit)) pass.end(probeFailed)
        return undefined
      })
    }

    // a traced call's breaker changes are events on its span
    const admit = (link: Link) =>
      Effect.withFiberRuntime<Pass | undefined>((fiber) => link.breaker.admit(recordingSpan(fiber)))
    // ends the pass, and waits until the change of state it made (if any) reached Redis
    const release = (pass: Pass | undefined) =>
      Effect.suspend(() => {
        pass?.stop()
        return pass?.sent === undefined ? Effect.void : Effect.asVoid(Fiber.await(pass.sent))
      })

    /** Runs `use` with a pass through `link`'s breaker (undefined: skip it) and, however it exits, ends the pass. */
    const admitted = <A, E>(link: Link, use: (pass: Pass | undefined) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.acquireUseRelease(admit(link), (pass) => Effect.flatMap(cleared(link, pass), use), release)

    /** `admitted` for a stream's part on one backend: the pass ends when that part does, however it does. */
    const admittedChannel = <A>(
      link: Link,
      use: (pass: Pass | undefined) => Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown>
    ): Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown> =>
      Channel.acquireUseRelease(admit(link), (pass) =>
        Channel.flatMap(Channel.fromEffect(cleared(link, pass)), use), release)

    const allSkipped = (tried: ReadonlyArray<BackendFailure>) =>
      failing(
        new LlmProviderError({
          provider: "fallback",
          model: first.model,
          message: `no backend is available: ${
            tried.map((failure) => failure.provider).join(", ")
          } are cooling down after repeated failures`
        }),
        tried
      )

    /**
     * A fallback step from `link` to `next`, for `reason` (the error's tag, or
     * `breaker_open` for a backend skipped): one more `effect_llm.fallback.steps`
     * and, when traced, an `effect_llm.fallback` event on the chain's span.
     */
    const stepped = (link: Link, next: Link | undefined, reason: string) =>
      Effect.withFiberRuntime<void>((fiber) => {
        const tags = {
          [attr.fallbackFrom]: link.llm.provider,
          [attr.fallbackTo]: next?.llm.provider ?? "",
          [attr.fallbackReason]: reason
        }
        Metrics.increment(Metrics.fallbacks, Metrics.labels(tags))
        recordingSpan(fiber)?.event(event.fallback, nanosNow(fiber), tags)
        return Effect.void
      })

    const logFallback = (link: Link, error: LlmError, next: Link | undefined) =>
      Effect.logWarning(
        `effect-llm: ${link.llm.provider} failed (${error._tag}: ${error.message}); falling back to ${
          next?.llm.provider ?? "nothing"
        }`
      ).pipe(
        Effect.annotateLogs({ "llm.fallback.from": link.llm.provider, "llm.fallback.to": next?.llm.provider ?? "" }),
        Effect.zipRight(stepped(link, next, error._tag))
      )

    /** The chain's span attributes: its backends, in order. */
    const spanAttributes = {
      [attr.fallbackBackends]: chain.map((link) =>
        link.llm.provider
      )
    }

    /** Runs `call` on the chain: the backend's own retries, then the next backend. */
    const complete = (messages: ReadonlyArray<Message>, callOptions?: CompletionOptions) =>
      spanned(fallbackSpan, { attributes: spanAttributes }, () =>
        Effect.gen(function*() {
          const tried: Array<BackendFailure> = []
          for (let i = 0; i < chain.length; i++) {
            const link = chain[i]!
            const last = i === chain.length - 1
            const exit = yield* admitted(link, (pass) =>
              pass === undefined ? Effect.succeed(undefined) : Effect.locally(
                Effect.tap(Effect.exit(link.llm.complete(messages, optionsFor(i, callOptions))), (exit) =>
                  pass.end(endOf(exit))),
                Retry.retryRefusedConnections,
                last
              ))
            if (exit === undefined) {
              tried.push({ provider: link.llm.provider })
              yield* stepped(link, chain[i + 1], "breaker_open")
              continue
            }
            if (Exit.isSuccess(exit)) {
              return annotate(exit.value, tried)
            }
            const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
            if (failure === undefined) {
              return yield* Effect.failCause(exit.cause)
            }
            if (last || !movesOn(failure)) {
              return yield* Effect.fail(failing(failure, tried))
            }
            tried.push({ provider: link.llm.provider, error: failure })
            yield* logFallback(link, failure, chain[i + 1])
          }
          return yield* Effect.fail(allSkipped(tried))
        }))

    /**
     * The stream from backend `from` on: each backend's events run through
     * one relaying stage, in the consumer's fiber, with no second executor or
     * pull per chunk. Until a backend's first event it may fall through to the
     * next (its refused connections not retried unless it is the last);
     * after it, a failure carries the text delivered, or, in continuation
     * mode, the next backend continues from that text. `delivered` is the
     * text already delivered; the consumer gets `project` of each batch.
     */
    const openFrom = <A>(
      messages: ReadonlyArray<Message>,
      callOptions: CompletionOptions | undefined,
      from: number,
      tried: Array<BackendFailure>,
      delivered: string,
      project: Projection<A>
    ): Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown> => {
      const attempt = (i: number): Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown> => {
        if (i >= chain.length) {
          return Channel.fail(allSkipped(tried))
        }
        const link = chain[i]!
        const last = i === chain.length - 1
        return admittedChannel(link, (pass) => {
          if (pass === undefined) {
            tried.push({ provider: link.llm.provider })
            return Channel.zipRight(Channel.fromEffect(stepped(link, chain[i + 1], "breaker_open")), attempt(i + 1))
          }
          const request = delivered === ""
            ? messages
            : [...messages, new AssistantMessage({ content: delivered.trimEnd() })]
          // the backend opens with refused connections retried only if it is the last; its first event restores that
          return Channel.unwrap(Effect.map(FiberRef.getAndSet(Retry.retryRefusedConnections, last), (previous) => {
            const restore = FiberRef.set(Retry.retryRefusedConnections, previous)
            const relay = relaying(
              link,
              pass,
              i,
              messages,
              callOptions,
              tried,
              delivered,
              project,
              restore,
              (failure) => {
                if (last || !movesOn(failure)) {
                  return Channel.fail(failing(delivered === "" ? failure : withPartialText(failure, delivered), tried))
                }
                tried.push({ provider: link.llm.provider, error: failure })
                // restored before the next backend sets its own, so its first event restores the caller's value
                return Channel.zipRight(
                  Channel.fromEffect(Effect.zipRight(restore, logFallback(link, failure, chain[i + 1]))),
                  attempt(i + 1)
                )
              }
            )
            return Channel.ensuring(
              Channel.pipeTo(Stream.toChannel(link.llm.stream(request, optionsFor(i, callOptions))), relay),
              restore
            )
          }))
        })
      }
      return attempt(from)
    }

    /**
     * Relays one backend's events: drops a continuation's repetition of text
     * already delivered, ends `pass` as answered and notes the backends tried
     * on `Finish`, and ends it with the backend's failure. Before the first
     * event, a failure goes to `beforeFirst`.
     */
    const relaying = <A>(
      link: Link,
      pass: Pass,
      index: number,
      messages: ReadonlyArray<Message>,
      callOptions: CompletionOptions | undefined,
      tried: Array<BackendFailure>,
      before: string,
      project: Projection<A>,
      restore: Effect.Effect<void>,
      beforeFirst: (failure: LlmError) => Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown>
    ): Channel.Channel<Chunk.Chunk<A>, Chunk.Chunk<StreamEvent>, LlmError, LlmError, unknown, unknown> => {
      let committed = false
      const text: Array<string> = [before]
      let pending = before === "" ? undefined : ""
      /** Drops a continuation's repetition of text already delivered. */
      const dedupe = (delta: string): string => {
        if (pending === undefined) {
          return delta
        }
        pending += delta
        if (before.startsWith(pending) && pending.length < before.length) {
          return ""
        }
        const out = pending.startsWith(before) ? pending.slice(before.length) : pending
        pending = undefined
        return out
      }
      const relay = (chunk: Chunk.Chunk<StreamEvent>): ReturnType<Projection<A>> => {
        const out: Array<StreamEvent> = []
        for (const event of chunk) {
          if (event._tag === "TextDelta") {
            const delta = dedupe(event.text)
            if (delta === "") {
              continue
            }
            text.push(delta)
            out.push(delta === event.text ? event : StreamEvent.TextDelta({ text: delta }))
          } else if (event._tag === "Finish") {
            pass.end(answered)
            out.push(
              tried.length === 0 ? event : StreamEvent.Finish({
                ...event,
                metadata: annotate(
                  new CompletionResult({
                    content: "",
                    model: event.model,
                    finishReason: event.finishReason,
                    toolCalls: [],
                    usage: event.usage,
                    metadata: event.metadata
                  }, true),
                  tried
                ).metadata
              })
            )
          } else {
            out.push(event)
          }
        }
        return project(out)
      }
      /** A failure after the first event: no more fallback, except by continuation. */
      const afterFirst = (
        error: LlmError
      ): Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown> => {
        const sent = text.join("")
        const next = index + 1
        if (options.continuation === true && next < chain.length && movesOn(error)) {
          tried.push({ provider: link.llm.provider, error })
          return Channel.zipRight(
            Channel.fromEffect(logFallback(link, error, chain[next])),
            openFrom(messages, callOptions, next, tried, sent, project)
          )
        }
        return Channel.fail(failing(sent === "" ? error : withPartialText(error, sent), tried))
      }
      const read: Channel.Channel<Chunk.Chunk<A>, Chunk.Chunk<StreamEvent>, LlmError, LlmError, unknown, unknown> =
        Channel.readWithCause({
          onInput: (chunk: Chunk.Chunk<StreamEvent>) => {
            if (Chunk.isEmpty(chunk)) {
              return read
            }
            const writes = written(relay(chunk))
            const rest = writes === undefined ? read : Channel.zipRight(writes, read)
            if (committed) {
              return rest
            }
            committed = true
            pass.content = true
            return Channel.zipRight(Channel.fromEffect(restore), rest)
          },
          onFailure: (cause: Cause.Cause<LlmError>) => {
            const failure = Cause.failureOption(cause)
            // a defect or an interruption is not a backend's failure: it ends the stream as it is
            if (Option.isNone(failure)) {
              return Channel.failCause(cause)
            }
            pass.end({ _tag: "Failed", error: failure.value })
            return committed ? afterFirst(failure.value) : beforeFirst(failure.value)
          },
          // the backend's stream ended: after its events, or before any (nothing to deliver, nothing to fall back from)
          onDone: () =>
            Channel.void
        })
      return read
    }

    // `textDeltas` of this stream selects the text in the relaying stage itself, instead of in one more;
    // traced, the whole stream runs in the chain's span
    const stream = (messages: ReadonlyArray<Message>, callOptions?: CompletionOptions) =>
      projectable(<A>(project: Projection<A>) =>
        Stream.fromChannel(
          spannedChannel(
            fallbackSpan,
            spanAttributes,
            Channel.suspend(() =>
              openFrom(messages, callOptions, 0, [], "", project)
            )
          )
        )
      )

    // the primary is the backend every call tries first, so its cache is the one worth warming
    const primaryWarm = first.warm
    const warm = primaryWarm === undefined
      ? undefined
      : (messages: ReadonlyArray<Message>, callOptions?: CompletionOptions) =>
        primaryWarm(messages, optionsFor(0, callOptions))

    return { provider: first.provider, model: first.model, complete, stream, warm } satisfies Llm.Service
  })

/**
 * A backend layer with the probe asked before its open breaker's trial call.
 *
 * @since 0.1.0
 */
export interface ProbedLayer<E, R = never> {
  readonly layer: Layer.Layer<Llm, E, R>
  /** E.g. `Local.health({ baseUrl })`: cheaper than a real call, and costs no tokens. */
  readonly probe: Effect.Effect<unknown, unknown, R>
  /** Its breaker's name across processes (see `Backend.name`). */
  readonly name?: string | undefined
}

/**
 * A backend layer with its breaker's name across processes (see
 * `Backend.name`) and, optionally, a probe.
 *
 * @since 0.1.0
 */
export interface NamedLayer<E, R = never> {
  readonly layer: Layer.Layer<Llm, E, R>
  readonly name: string
  readonly probe?: Effect.Effect<unknown, unknown, R> | undefined
}

/**
 * Composes backend layers into one `Llm` that falls back in order: the
 * first is the primary. Each layer is built once, alongside the others; a
 * layer given with a `probe` is probed before its breaker's trial call.
 * With `SharedState` Redis in context, the breakers are shared by every
 * process using the same Redis and key prefix.
 *
 * @since 0.1.0
 */
export const layer = <E, R>(
  layers: ReadonlyArray<Layer.Layer<Llm, E, R> | ProbedLayer<E, R> | NamedLayer<E, R>>,
  options: FallbackOptions = {}
): Layer.Layer<Llm, E, R> =>
  Layer.scoped(
    Llm,
    Effect.gen(function*() {
      const context = yield* Effect.context<R>()
      const backends = yield* Effect.forEach(layers, (entry) => {
        const given = Layer.isLayer(entry) ? undefined : entry as ProbedLayer<E, R> | NamedLayer<E, R>
        const layer = given === undefined ? entry as Layer.Layer<Llm, E, R> : given.layer
        return Effect.map(Layer.build(layer), (built): Backend => ({
          llm: Context.get(built, Llm),
          ...(given?.name === undefined ? {} : { name: given.name }),
          ...(given?.probe === undefined ? {} : { probe: Effect.provide(given.probe, context) })
        }))
      })
      return yield* make(backends, options)
    })
  )

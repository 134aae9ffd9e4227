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
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { isTransient, type LlmError, LlmProviderError, withPartialText } from "../errors.js"
import { type CompletionOptions, CompletionResult, Llm, ResponseMetadata } from "../Llm.js"
import { AssistantMessage, type Message } from "../Message.js"
import * as Retry from "../Retry.js"
import { type Projection, projectable } from "../internal/textOnly.js"
import { StreamEvent } from "../Stream.js"

/** When a backend is taken out of rotation, and for how long. */
export interface CircuitBreakerOptions {
  /** Consecutive transient failures that open the breaker (default 3). */
  readonly failureThreshold?: number | undefined
  /** How long an open breaker skips its backend before one probe call (default 30 s). */
  readonly cooldown?: Duration.DurationInput | undefined
}

/** How the chain behaves. */
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

/** One backend of a chain, with an optional health probe used when its breaker half-opens. */
export interface Backend {
  readonly llm: Llm.Service
  /** Decides whether an open breaker may close (e.g. `Local.health`); default: a real call. */
  readonly probe?: Effect.Effect<unknown, unknown> | undefined
}

/** What an open breaker lets through. */
type Admission = "call" | "probe" | "skip"

/** A circuit breaker over wall-clock (test-clock) milliseconds. */
class Breaker {
  private failures = 0
  private openedAt: number | undefined
  private probing = false

  constructor(readonly threshold: number, readonly cooldownMillis: number) {}

  admit(now: number): Admission {
    if (this.openedAt === undefined) return "call"
    if (now < this.openedAt + this.cooldownMillis || this.probing) return "skip"
    this.probing = true
    return "probe"
  }

  succeed(): void {
    this.failures = 0
    this.openedAt = undefined
    this.probing = false
  }

  fail(now: number): void {
    const wasProbe = this.probing
    this.probing = false
    this.failures++
    if (wasProbe || this.failures >= this.threshold) this.openedAt = now
  }
}

/** A record of a backend that did not answer a call. */
export interface BackendFailure {
  readonly provider: string
  /** The error it failed with; absent when its breaker was open and it was skipped. */
  readonly error?: LlmError | undefined
}

const noBreaker = new Breaker(Number.POSITIVE_INFINITY, 0)

/** Notes the backends that were tried in a result's metadata. */
const annotate = (result: CompletionResult, tried: ReadonlyArray<BackendFailure>): CompletionResult =>
  tried.length === 0 ? result : new CompletionResult({
    ...result,
    metadata: new ResponseMetadata({
      ...result.metadata,
      fallbacks: tried.map((failure) => ({
        provider: failure.provider,
        ...(failure.error === undefined ? { skipped: true } : { error: failure.error })
      }))
    }, true)
  }, true)

/** Builds the fallback `Llm` over already-built backends. */
export const make = (
  backends: ReadonlyArray<Backend | Llm.Service>,
  options: FallbackOptions = {}
): Effect.Effect<Llm.Service> =>
  Effect.gen(function*() {
    if (backends.length === 0) return yield* Effect.dieMessage("Fallback.make needs at least one backend")
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const breakerOptions = options.circuitBreaker
    const chain = backends.map((backend) => {
      const entry: Backend = "llm" in backend ? backend : { llm: backend }
      return {
        ...entry,
        breaker: breakerOptions === false ? noBreaker : new Breaker(
          breakerOptions?.failureThreshold ?? 3,
          Duration.toMillis(Duration.decode(breakerOptions?.cooldown ?? "30 seconds"))
        )
      }
    })
    type Link = (typeof chain)[number]
    const first = chain[0]!.llm

    /** Whether the call may move past this error to the next backend. */
    const movesOn = (error: LlmError) => options.fallThroughOnAnyError === true || isTransient(error)

    /** Checks the breaker (running the probe when it half-opens); false means skip. */
    const admit = (link: Link): Effect.Effect<boolean> => {
      const admission = link.breaker.admit(now())
      if (admission !== "probe" || link.probe === undefined) return Effect.succeed(admission !== "skip")
      return link.probe.pipe(
        Effect.as(true),
        Effect.catchAllCause(() => Effect.sync(() => (link.breaker.fail(now()), false)))
      )
    }

    const allSkipped = (tried: ReadonlyArray<BackendFailure>) =>
      new LlmProviderError({
        provider: "fallback",
        model: first.model,
        message: `no backend is available: ${tried.map((failure) => failure.provider).join(", ")} are cooling down after repeated failures`
      })

    const logFallback = (link: Link, error: LlmError, next: Link | undefined) =>
      Effect.logWarning(`effect-llm: ${link.llm.provider} failed (${error._tag}: ${error.message}); falling back to ${next?.llm.provider ?? "nothing"}`).pipe(
        Effect.annotateLogs({ "llm.fallback.from": link.llm.provider, "llm.fallback.to": next?.llm.provider ?? "" }),
        Effect.zipRight(Effect.annotateCurrentSpan("llm.fallback", `${link.llm.provider} -> ${next?.llm.provider ?? ""}`))
      )

    /** Runs `call` on the chain: the backend's own retries, then the next backend. */
    const complete = (messages: ReadonlyArray<Message>, callOptions?: CompletionOptions) =>
      Effect.gen(function*() {
        const tried: Array<BackendFailure> = []
        for (let i = 0; i < chain.length; i++) {
          const link = chain[i]!
          const last = i === chain.length - 1
          if (!(yield* admit(link))) {
            tried.push({ provider: link.llm.provider })
            continue
          }
          const exit = yield* Effect.exit(
            Effect.locally(link.llm.complete(messages, callOptions), Retry.retryRefusedConnections, last)
          )
          if (Exit.isSuccess(exit)) {
            link.breaker.succeed()
            return annotate(exit.value, tried)
          }
          const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
          if (failure === undefined) return yield* Effect.failCause(exit.cause)
          if (isTransient(failure)) link.breaker.fail(now())
          if (last || !movesOn(failure)) return yield* Effect.fail(failure)
          tried.push({ provider: link.llm.provider, error: failure })
          yield* logFallback(link, failure, chain[i + 1])
        }
        return yield* Effect.fail(allSkipped(tried))
      }).pipe(Effect.withSpan("Llm.fallback.complete"))

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
        if (i >= chain.length) return Channel.fail(allSkipped(tried))
        const link = chain[i]!
        const last = i === chain.length - 1
        return Channel.flatMap(Channel.fromEffect(admit(link)), (admitted) => {
          if (!admitted) {
            tried.push({ provider: link.llm.provider })
            return attempt(i + 1)
          }
          const request = delivered === ""
            ? messages
            : [...messages, new AssistantMessage({ content: delivered.trimEnd() })]
          // the backend opens with refused connections retried only if it is the last; its first event restores that
          return Channel.unwrap(Effect.map(FiberRef.getAndSet(Retry.retryRefusedConnections, last), (previous) => {
            const restore = FiberRef.set(Retry.retryRefusedConnections, previous)
            const relay = relaying(link, i, messages, callOptions, tried, delivered, project, restore, (failure) => {
              if (isTransient(failure)) link.breaker.fail(now())
              if (last || !movesOn(failure)) {
                return Channel.fail(delivered === "" ? failure : withPartialText(failure, delivered))
              }
              tried.push({ provider: link.llm.provider, error: failure })
              // restored before the next backend sets its own, so its first event restores the caller's value
              return Channel.zipRight(
                Channel.fromEffect(Effect.zipRight(restore, logFallback(link, failure, chain[i + 1]))),
                attempt(i + 1)
              )
            })
            return Channel.ensuring(Channel.pipeTo(Stream.toChannel(link.llm.stream(request, callOptions)), relay), restore)
          }))
        })
      }
      return attempt(from)
    }

    /**
     * Relays one backend's events: drops a continuation's repetition of text
     * already delivered, closes the breaker and notes the backends tried on
     * `Finish`. Before the first event, a failure goes to `beforeFirst`.
     */
    const relaying = <A>(
      link: Link,
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
        if (pending === undefined) return delta
        pending += delta
        if (before.startsWith(pending) && pending.length < before.length) return ""
        const out = pending.startsWith(before) ? pending.slice(before.length) : pending
        pending = undefined
        return out
      }
      const relay = (chunk: Chunk.Chunk<StreamEvent>): Array<A> => {
        const out: Array<StreamEvent> = []
        for (const event of chunk) {
          if (event._tag === "TextDelta") {
            const delta = dedupe(event.text)
            if (delta === "") continue
            text.push(delta)
            out.push(delta === event.text ? event : StreamEvent.TextDelta({ text: delta }))
          } else if (event._tag === "Finish") {
            link.breaker.succeed()
            out.push(tried.length === 0 ? event : StreamEvent.Finish({
              ...event,
              metadata: annotate(new CompletionResult({
                content: "",
                model: event.model,
                finishReason: event.finishReason,
                toolCalls: [],
                usage: event.usage,
                metadata: event.metadata
              }, true), tried).metadata
            }))
          } else {
            out.push(event)
          }
        }
        return project(out)
      }
      /** A failure after the first event: no more fallback, except by continuation. */
      const afterFirst = (error: LlmError): Channel.Channel<Chunk.Chunk<A>, unknown, LlmError, unknown, unknown, unknown> => {
        if (isTransient(error)) link.breaker.fail(now())
        const sent = text.join("")
        const next = index + 1
        if (options.continuation === true && next < chain.length && movesOn(error)) {
          tried.push({ provider: link.llm.provider, error })
          return Channel.zipRight(
            Channel.fromEffect(logFallback(link, error, chain[next])),
            openFrom(messages, callOptions, next, tried, sent, project)
          )
        }
        return Channel.fail(sent === "" ? error : withPartialText(error, sent))
      }
      const read: Channel.Channel<Chunk.Chunk<A>, Chunk.Chunk<StreamEvent>, LlmError, LlmError, unknown, unknown> =
        Channel.readWithCause({
          onInput: (chunk: Chunk.Chunk<StreamEvent>) => {
            if (Chunk.isEmpty(chunk)) return read
            const out = relay(chunk)
            const rest = out.length === 0 ? read : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), read)
            if (committed) return rest
            committed = true
            return Channel.zipRight(Channel.fromEffect(restore), rest)
          },
          onFailure: (cause: Cause.Cause<LlmError>) => {
            const failure = Cause.failureOption(cause)
            // a defect or an interruption is not a backend's failure: it ends the stream as it is
            if (Option.isNone(failure)) return Channel.failCause(cause)
            return committed ? afterFirst(failure.value) : beforeFirst(failure.value)
          },
          // the backend's stream ended: after its events, or before any (nothing to deliver, nothing to fall back from)
          onDone: () => Channel.void
        })
      return read
    }

    // `textDeltas` of this stream selects the text in the relaying stage itself, instead of in one more
    const stream = (messages: ReadonlyArray<Message>, callOptions?: CompletionOptions) =>
      projectable(<A>(project: Projection<A>) =>
        Stream.fromChannel(Channel.suspend(() => openFrom(messages, callOptions, 0, [], "", project)))
      )

    return { provider: first.provider, model: first.model, complete, stream } satisfies Llm.Service
  })

/** A backend layer with the probe that decides when its open breaker may close. */
export interface ProbedLayer<E, R = never> {
  readonly layer: Layer.Layer<Llm, E, R>
  /** E.g. `Local.health({ baseUrl })`: cheaper than a real call, and costs no tokens. */
  readonly probe: Effect.Effect<unknown, unknown, R>
}

/**
 * Composes backend layers into one `Llm` that falls back in order: the
 * first is the primary. Each layer is built once, alongside the others; a
 * layer given with a `probe` is probed, instead of called, when its breaker
 * half-opens.
 */
export const layer = <E, R>(
  layers: ReadonlyArray<Layer.Layer<Llm, E, R> | ProbedLayer<E, R>>,
  options: FallbackOptions = {}
): Layer.Layer<Llm, E, R> =>
  Layer.scoped(
    Llm,
    Effect.gen(function*() {
      const context = yield* Effect.context<R>()
      const backends = yield* Effect.forEach(layers, (entry) => {
        const probed = "probe" in entry ? entry : undefined
        const layer = probed === undefined ? entry as Layer.Layer<Llm, E, R> : probed.layer
        return Effect.map(Layer.build(layer), (built): Backend => ({
          llm: Context.get(built, Llm),
          ...(probed === undefined ? {} : { probe: Effect.provide(probed.probe, context) })
        }))
      })
      return yield* make(backends, options)
    })
  )

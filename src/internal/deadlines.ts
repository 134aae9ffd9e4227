/**
 * Deadlines, one way for every path: a request's deadline (total, first
 * token, idle) is kept by a watchdog that, when one passes, records which and
 * closes the request's scope, which aborts it: the send or read pending on
 * it fails at once and the caller reports the timeout instead. No fiber
 * races the request or a read. Under Effect's default clock a watchdog is a
 * plain timer; under any other clock (`TestClock`) a fiber sleeping on it.
 * The transport's drain bound is the same plain timer.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Scope from "effect/Scope"
import { LlmTimeoutError, type TimeoutKind } from "../errors.js"
import type { ReleaseTarget } from "./transport.js"

/** Effect's default clock: its `sleep` is a `setTimeout`. */
const nativeClock = Effect.runSync(Effect.clock)

/** The longest delay `setTimeout` takes; Effect's clock treats longer sleeps as endless. */
const maxTimerMillis = 2 ** 31 - 1

/**
 * Runs `action` once after `millis` (never, past what a timer can wait);
 * returns the function that cancels it. `unref`: the timer alone does not
 * keep the process alive.
 */
export const timer = (millis: number, action: () => void, unref = false): () => void => {
  if (!(millis <= maxTimerMillis)) return () => {}
  const handle = setTimeout(action, millis)
  if (unref) handle.unref?.()
  return () => clearTimeout(handle)
}

/** A watchdog on plain timers, started now (Effect's default clock); returns the function that stops it. */
const timerWatchdog = (check: () => number | undefined): () => void => {
  let cancel: (() => void) | undefined
  const tick = () => {
    const wait = check()
    cancel = wait === undefined ? undefined : timer(wait, tick)
  }
  tick()
  return () => cancel?.()
}

/** `deadline`'s watchdog started with `check`, then `use`: on the default clock, with no step of its own. */
export const watching = <A, E>(
  deadline: Deadline,
  clock: Clock.Clock,
  check: () => number | undefined,
  use: Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  clock === nativeClock
    ? Effect.suspend(() => {
      deadline.stop = timerWatchdog(check)
      return use
    })
    : Effect.zipRight(watchOnFiber(deadline, check), use)

/** A watchdog that is not running. */
const stopped = (): void => {}

/** A release not attached yet. */
const unattached = (): void => {}

/**
 * One request under deadlines: what aborts it and what its watchdog saw.
 * The request is released through its scope (`abort`), or, sent by a
 * transport that takes no scope, through the release that transport
 * attached (`ReleaseTarget`). A class rather than an object literal: V8
 * allocates a literal whose objects tend to survive straight into the old
 * generation (allocation-site pretenuring), and a deadline there keeps its
 * call's whole graph (scope, exchange, fiber) alive through the scavenges
 * until the next full collection (BENCHMARKS.md, issue 19's sixth pass).
 */
export class Deadline implements ReleaseTarget {
  /** The timeout the watchdog saw pass, if any. */
  timedOut: LlmTimeoutError | undefined = undefined
  /** Whether the reply was read to the end (its connection can be kept). */
  completed = false
  /** Stops the watchdog. */
  stop: () => void = stopped
  /** Whether the request was released (`release`, `releaseNow`). */
  released = false
  /** What the transport attached to release the request without a scope; `undefined` once released. */
  private onRelease: ((completed: boolean) => void) | undefined = unattached

  constructor(
    /** Closing it aborts the request; `undefined` for a request released through `attach`. */
    readonly abort: Scope.CloseableScope | undefined,
    /** When the request started (clock millis). */
    readonly start: number
  ) {}

  attach(release: (completed: boolean) => void): void {
    if (this.onRelease === undefined) release(false)
    else this.onRelease = release
  }

  /** Releases what `attach` was given (once): `completed` lets a used reply finish, else the request is aborted. */
  releaseAttached(completed: boolean): void {
    const release = this.onRelease
    this.onRelease = undefined
    release?.(completed)
  }
}

/** A request's deadline state, its watchdog not started yet; `abort`: its scope, if the transport takes one. */
export const make = (abort: Scope.CloseableScope | undefined, start: number): Deadline => new Deadline(abort, start)

/**
 * Starts `deadline`'s watchdog on a clock other than the default one
 * (`TestClock`): a fiber sleeping on the fiber's clock, `check` run now and
 * again after each wait it returns, until it returns `undefined` (it has
 * acted, or stands down).
 */
const watchOnFiber = (deadline: Deadline, check: () => number | undefined): Effect.Effect<void> => {
  const loop: Effect.Effect<void> = Effect.suspend(() => {
    const wait = check()
    return wait === undefined ? Effect.void : Effect.zipRight(Effect.sleep(wait), loop)
  })
  return Effect.map(Effect.forkDaemon(loop), (fiber) => {
    deadline.stop = () => fiber.unsafeInterruptAsFork(FiberId.none)
  })
}

/** The exit that closes a request's scope to abort it (a success exit lets a used reply finish). */
const aborted = Exit.interrupt(FiberId.none)

/**
 * Records that `deadline` passed, and aborts its request: the send or read
 * pending on it fails at once, and the request fails with `timeout`.
 */
export const expire = (deadline: Deadline, timeout: LlmTimeoutError): undefined => {
  deadline.timedOut = timeout
  deadline.releaseAttached(false)
  if (deadline.abort !== undefined) Effect.runFork(Scope.close(deadline.abort, aborted))
  return undefined
}

/** Stops `deadline`'s watchdog and calls its attached release (a request sent without a scope), now. */
const releaseNow = (deadline: Deadline): void => {
  deadline.released = true
  deadline.stop()
  deadline.releaseAttached(deadline.completed)
}

/**
 * Releases a request (its watchdog stopped), which lets a reply read to its
 * end finish (its connection is reused) and aborts any other: at once when
 * it was sent without a scope (or was released already), else in the
 * returned effect, which closes its scope.
 */
export const releaseOrEffect = (deadline: Deadline): Effect.Effect<void> | undefined => {
  if (deadline.released) return undefined
  const { abort } = deadline
  if (abort === undefined) {
    releaseNow(deadline)
    return undefined
  }
  return Effect.suspend(() => {
    if (deadline.released) return Effect.void
    releaseNow(deadline)
    return Scope.close(abort, deadline.completed ? Exit.void : aborted)
  })
}

/** `next` once the request is released (see `releaseOrEffect`). */
export const releasedThen = <A, E>(deadline: Deadline, next: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  const released = releaseOrEffect(deadline)
  return released === undefined ? next : Effect.zipRight(released, next)
}

/**
 * Runs `use` with a request's deadline that aborts it `millis` after it
 * starts; fails with `onTimeout()` then, whatever failure the abort caused.
 * A `use` that succeeds counts as its reply read to the end. `scoped`: the
 * request is aborted through a scope of its own (`deadline.abort`), for a
 * transport that takes one; else through what its transport attaches.
 */
export const attempt = <A, E>(
  clock: Clock.Clock,
  millis: number,
  onTimeout: () => LlmTimeoutError,
  scoped: boolean,
  use: (deadline: Deadline) => Effect.Effect<A, E>
): Effect.Effect<A, E | LlmTimeoutError> =>
  scoped
    ? Effect.flatMap(Scope.make(), (abort) => guarded(abort, clock, millis, onTimeout, use))
    : guarded(undefined, clock, millis, onTimeout, use)

/** `attempt`'s interrupt-safe region: the outcome (a timeout replaces whatever failure the abort caused), then the release. */
const guarded = <A, E>(
  abort: Scope.CloseableScope | undefined,
  clock: Clock.Clock,
  millis: number,
  onTimeout: () => LlmTimeoutError,
  use: (deadline: Deadline) => Effect.Effect<A, E>
): Effect.Effect<A, E | LlmTimeoutError> =>
  Effect.uninterruptibleMask((restore) => {
    const deadline = make(abort, 0)
    let armed = false
    const check = () => {
      if (armed) return expire(deadline, onTimeout())
      armed = true
      return millis
    }
    return Effect.matchCauseEffect(restore(watching(deadline, clock, check, use(deadline))), {
      onFailure: (cause) => {
        const { timedOut } = deadline
        const failure = timedOut === undefined ? cause : Cause.map(cause, (): E | LlmTimeoutError => timedOut)
        return releasedThen(deadline, Effect.failCause(failure))
      },
      onSuccess: (value) => {
        deadline.completed = true
        return releasedThen(deadline, Effect.succeed(value))
      }
    })
  })

/**
 * `attempt` with a scope of its own, handed to `use`: for a request sent by
 * any transport (Local's probes).
 */
export const within = <A, E>(
  clock: Clock.Clock,
  millis: number,
  onTimeout: () => LlmTimeoutError,
  use: (abort: Scope.Scope) => Effect.Effect<A, E>
): Effect.Effect<A, E | LlmTimeoutError> =>
  Effect.flatMap(Scope.make(), (abort) => guarded(abort, clock, millis, onTimeout, () => use(abort)))

/** A streamed request's limits in millis (`Infinity`: none). */
export interface StreamLimits {
  /** From the start to the first content. */
  readonly firstToken: number
  /** From the start to the last byte. */
  readonly total: number
  /** Between two contents. */
  readonly idle: number
}

/**
 * A streamed request's next deadline, at clock time `now`: the wait until
 * the nearest one of its phase, or, once one passed, which. While it waits
 * for content, it looks again `idle` from now at the latest: the idle
 * deadline of content arriving meanwhile cannot come sooner.
 */
export const nextStreamDeadline = (
  limits: StreamLimits,
  start: number,
  lastContent: number | undefined,
  now: number
): number | "firstToken" | "total" | "idle" => {
  if (lastContent === undefined) {
    const deadline = start + limits.firstToken
    return deadline <= now ? "firstToken" : Math.min(deadline, now + limits.idle) - now
  }
  const total = start + limits.total
  const deadline = Math.min(total, lastContent + limits.idle)
  if (deadline > now) return deadline - now
  return deadline === total ? "total" : "idle"
}

/** The error for a provider's request that ran past `timeout`, the deadline of `kind`. */
export const timeoutError = (
  { model, provider }: { readonly provider: string; readonly model: string },
  kind: TimeoutKind,
  timeout: Duration.Duration
): LlmTimeoutError =>
  new LlmTimeoutError({
    provider,
    model,
    kind,
    timeout,
    message: `${provider} (${model}): ${
      kind === "total" ? "the request" : kind === "firstToken" ? "the first token" : "the next token"
    } took longer than ${Duration.format(timeout)}`
  })

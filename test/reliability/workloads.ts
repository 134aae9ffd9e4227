/**
 * The reliability workloads, sized by their caller: the CI-sized tests in this
 * folder run them small and assert; `scripts/load.ts`, `scripts/soak.ts` and
 * `scripts/storm.ts` run them full-sized and print the figures.
 *
 * Every workload runs over real loopback HTTP against the fake provider
 * server, which answers each request from its content (a responder), so a
 * thousand concurrent callers each get, and are checked against, their own
 * answer.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Supervisor from "effect/Supervisor"
import { make as makeContext } from "../../src/Context.js"
import * as Conversation from "../../src/Conversation.js"
import type { LlmError } from "../../src/errors.js"
import { validateRequest } from "../../src/internal/validate.js"
import * as Fallback from "../../src/layers/Fallback.js"
import { type CompletionResult, Llm } from "../../src/Llm.js"
import * as Message from "../../src/Message.js"
import * as LlmStream from "../../src/Stream.js"
import * as Tool from "../../src/Tool.js"
import type { ToolExecutionError } from "../../src/Tool.js"
import * as Toolkit from "../../src/Toolkit.js"
import { type Backend, backends } from "../support/backends.js"
import * as FakeProvider from "../support/FakeProvider.js"
import {
  eventually,
  type MemoryPeaks,
  random,
  type RecordedLog,
  recordLogs,
  resourceCounts,
  sampleMemory,
  settledHeap,
  watchProcessErrors
} from "./probes.js"

const backend = (name: string): Backend => backends.find((b) => b.name === name)!

/** Builds a layer in its own scope, so a workload can close it and check what closing releases. */
const buildLlm = (layer: Layer.Layer<Llm>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(layer, scope)
    return { llm: Context.get(context, Llm), close: Scope.close(scope, Exit.void) }
  })

/** Starts a fake provider that accepts a thousand connections at once; closed with the scope. */
const server = Effect.acquireRelease(
  Effect.promise(() => FakeProvider.start({ backlog: 4096 })),
  (s) => Effect.promise(() => s.close())
)

const settle = <A>(read: () => A, ok: (value: A) => boolean, timeoutMs?: number) =>
  Effect.promise(() => eventually(read, ok, timeoutMs))

/**
 * Closes the built layers, then waits until the fake server has no socket
 * open and the process holds no more sockets or timers than at `start`.
 */
const closeAndSettle = (
  built: ReadonlyArray<{ readonly close: Effect.Effect<void> }>,
  fake: { readonly openConnections: number },
  start: { readonly sockets: number; readonly timers: number }
) =>
  Effect.zipRight(
    Effect.forEach(built, (b) => b.close, { discard: true }),
    settle(
      () => ({ serverSockets: fake.openConnections, ...resourceCounts() }),
      (now) => now.serverSockets === 0 && now.sockets <= start.sockets && now.timers <= start.timers
    )
  )

/** Polls the fibers a supervisor tracks until none is left (or 10 s pass); returns how many are left. */
const fibersLeft = (supervisor: Supervisor.Supervisor<Array<Fiber.RuntimeFiber<any, any>>>): Effect.Effect<number> =>
  Effect.gen(function*() {
    const until = Date.now() + 10_000
    for (;;) {
      const fibers: ReadonlyArray<unknown> = yield* supervisor.value
      if (fibers.length === 0 || Date.now() > until) return fibers.length
      yield* Effect.sleep("10 millis")
    }
  })

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

/** The text stream `id` must receive, in full and in order. */
export const loadText = (id: number): string =>
  `Stream ${id} answers: the quick brown fox jumps over the lazy dog, ${id}.`

/** What a load run measured. */
export interface LoadFigures {
  readonly streams: number
  readonly fallback: boolean
  readonly succeeded: number
  readonly failed: number
  /** Streams that completed with text other than their own. */
  readonly wrongText: number
  /** The first few failures, for the report. */
  readonly failures: ReadonlyArray<string>
  /** Which backend answered how many streams. */
  readonly answeredBy: Readonly<Record<string, number>>
  /** Streams whose metadata records a fallback. */
  readonly fellBack: number
  /** The most requests the primary server had in flight at once (all of its successful ones: the replies are gated). */
  readonly peakInFlight: number
  /** Requests and connections each server saw. */
  readonly primary: FakeProvider.FakeProviderStats
  readonly secondary?: FakeProvider.FakeProviderStats | undefined
  readonly memory: MemoryPeaks
  /** Heap in use before the run (after collection). */
  readonly heapBefore: number
  /** Heap in use (after collection) with every gated request open, before any reply: the live cost of open streams. */
  readonly heapAllOpen: number | undefined
  readonly elapsedMillis: number
}

const idIn = (rawBody: string, tag: string): number | undefined => {
  const match = new RegExp(`${tag} (\\d+)`).exec(rawBody)
  return match === null ? undefined : Number(match[1])
}

/**
 * Opens `streams` streams at once through one layer (a local OpenAI-compatible
 * backend), or through a two-backend `Fallback` chain (local primary, Anthropic
 * secondary, on two servers) whose primary fails one request in five (503 or a
 * reset connection) and so falls back under load. The primary holds its replies
 * until every request it will answer has arrived, so all the streams are open
 * at once. Each stream is collected and checked against its own text.
 */
export const load = (options: {
  readonly streams: number
  readonly fallback: boolean
  /** Milliseconds between SSE events, so the streams overlap (default 2). */
  readonly delayMs?: number
}): Effect.Effect<LoadFigures> =>
  Effect.scoped(Effect.gen(function*() {
    const primary = yield* server
    const secondary = options.fallback ? yield* server : undefined
    // the primary holds every reply it will answer until all of them have arrived, so that all the streams are
    // open at once (released anyway after 30 s, so a bug shows as a failure, not a hang)
    const gated = options.fallback ? options.streams - 2 * Math.ceil(options.streams / 10) : options.streams
    let arrived = 0
    let heapAllOpen: number | undefined
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const fuse = setTimeout(() => release(), 30_000)
    yield* Effect.addFinalizer(() => Effect.sync(() => clearTimeout(fuse)))
    const reply = (id: number): FakeProvider.Script => ({
      kind: "reply",
      text: loadText(id),
      chunkSize: 4,
      delayMs: options.delayMs ?? 2
    })
    primary.respond((request) => {
      const id = idIn(request.rawBody, "load")
      if (id === undefined) return undefined
      if (options.fallback && id % 10 === 0) return { kind: "status", status: 503, message: "primary overloaded" }
      if (options.fallback && id % 10 === 5) return { kind: "reset" }
      if (++arrived === gated) {
        // every request is open and waiting: the live heap now is what a thousand open streams cost
        void settledHeap().then((heap) => {
          heapAllOpen = heap
          release()
        })
      }
      return { kind: "gated", until: gate, then: reply(id) }
    })
    secondary?.respond((request) => {
      const id = idIn(request.rawBody, "load")
      return id === undefined ? undefined : reply(id)
    })
    const layer = options.fallback
      ? Fallback.layer([backend("local").layer(primary.url), backend("anthropic").layer(secondary!.url)])
      : backend("local").layer(primary.url)
    const { close, llm } = yield* buildLlm(layer)

    const heapBefore = yield* Effect.promise(settledHeap)
    const memory = sampleMemory()
    const started = Date.now()
    const outcomes = yield* Effect.forEach(
      Array.from({ length: options.streams }, (_, id) => id),
      (id) =>
        Effect.either(LlmStream.collect(llm.stream([Message.user(`load ${id}`)]))).pipe(
          Effect.map((either) => ({ id, either }))
        ),
      { concurrency: "unbounded" }
    )
    const elapsedMillis = Date.now() - started
    const peaks = memory.stop()

    const answeredBy: Record<string, number> = {}
    const failures: Array<string> = []
    let succeeded = 0
    let failed = 0
    let wrongText = 0
    let fellBack = 0
    for (const { either, id } of outcomes) {
      if (either._tag === "Left") {
        failed++
        if (failures.length < 5) failures.push(`stream ${id}: ${either.left._tag}: ${either.left.message}`)
        continue
      }
      const result = either.right
      if (result.content !== loadText(id)) {
        wrongText++
        if (failures.length < 5) failures.push(`stream ${id}: got ${JSON.stringify(result.content)}`)
        continue
      }
      succeeded++
      answeredBy[result.metadata.provider] = (answeredBy[result.metadata.provider] ?? 0) + 1
      if ((result.metadata.fallbacks?.length ?? 0) > 0) fellBack++
    }
    yield* close
    return {
      streams: options.streams,
      fallback: options.fallback,
      succeeded,
      failed,
      wrongText,
      failures,
      answeredBy,
      fellBack,
      peakInFlight: primary.stats.peakActive,
      primary: primary.stats,
      secondary: secondary?.stats,
      memory: peaks,
      heapBefore,
      heapAllOpen,
      elapsedMillis
    }
  }))

// ---------------------------------------------------------------------------
// Soak
// ---------------------------------------------------------------------------

/** The kinds of call a soak mixes, with their weights. */
const soakMix = [
  ["complete", 20],
  ["stream", 20],
  ["tools", 8],
  ["toolStream", 8],
  ["consumerStops", 5],
  ["retry503", 4],
  ["retry429", 4],
  ["resetBefore", 4],
  ["inBandEarly", 4],
  ["hangOnce", 2],
  ["resetMid", 4],
  ["malformed", 3],
  ["cutOff", 3],
  ["inBandLate", 3],
  ["badRequest", 3],
  ["stall", 2]
] as const

/** A kind of soak call. */
export type SoakKind = (typeof soakMix)[number][0]

/** What a call of each kind must end with: the reply, or a typed error. */
const soakExpected: Readonly<Record<SoakKind, "ok" | LlmError["_tag"]>> = {
  complete: "ok",
  stream: "ok",
  tools: "ok",
  toolStream: "ok",
  consumerStops: "ok",
  retry503: "ok",
  retry429: "ok",
  resetBefore: "ok",
  inBandEarly: "ok",
  hangOnce: "ok",
  resetMid: "LlmConnectionError",
  malformed: "LlmResponseError",
  cutOff: "LlmResponseError",
  inBandLate: "LlmProviderError",
  badRequest: "LlmInvalidRequestError",
  stall: "LlmTimeoutError"
}

/** The text soak call `id` must receive. */
export const soakText = (id: number): string => `Soak reply ${id}: the quick brown fox.`

/** A snapshot of what the process holds. */
export interface Snapshot {
  /** Heap in use after forced collection (bytes). */
  readonly heap: number
  /** Sockets open at the fake server. */
  readonly serverSockets: number
  /** Active TCP socket handles in the process (client and server ends). */
  readonly sockets: number
  /** Active timers in the process. */
  readonly timers: number
  /** Every active resource by kind. */
  readonly handles: Readonly<Record<string, number>>
  /** Fibers of the workload still running. */
  readonly fibers: number
}

/** What a soak run measured. */
export interface SoakFigures {
  readonly calls: number
  readonly concurrency: number
  /** Calls of each kind, and how many ended as expected. */
  readonly kinds: Readonly<Record<string, { readonly calls: number; readonly asExpected: number }>>
  /** Calls that ended otherwise than expected, and the first few of them. */
  readonly unexpected: number
  readonly unexpectedSamples: ReadonlyArray<string>
  /** HTTP requests the server received (retries included). */
  readonly requests: number
  /** Requests the client abandoned before the response finished (timeouts, early stops). */
  readonly closedByClient: number
  /** TCP connections the server accepted. */
  readonly connections: number
  /** Before any layer existed. */
  readonly start: Snapshot
  /** After the warm-up, layers open. */
  readonly baseline: Snapshot
  /** After the soak settled, layers still open. */
  readonly after: Snapshot
  /** After the layers were closed. */
  readonly closed: Snapshot
  /** `after.heap - baseline.heap` (bytes). */
  readonly heapGrowth: number
  /** Whether the in-flight requests, fibers and timers returned to the baseline while the layers were open. */
  readonly settledOpen: boolean
  /** Whether sockets and handles returned to the start once the layers were closed. */
  readonly settledClosed: boolean
  readonly memory: MemoryPeaks
  readonly elapsedMillis: number
}

const lookup = Tool.make("lookup", {
  description: "Looks a key up",
  parameters: Schema.Struct({ key: Schema.String }),
  handler: ({ key }) => Effect.succeed(`value-${key}`)
})
const soakKit = Toolkit.make(lookup)

/** What the fake server does with a soak request, read from its `soak <id> <kind>` message. */
const soakScript = (request: FakeProvider.RecordedRequest, faulted: Set<number>): FakeProvider.Script | undefined => {
  const match = /soak (\d+) (\w+)/.exec(request.rawBody)
  if (match === null) return undefined
  const id = Number(match[1])
  const kind = match[2] as SoakKind
  const text = soakText(id)
  const reply: FakeProvider.Reply = { kind: "reply", text }
  // the first request of the call gets the fault, every retry the reply
  const once = (fault: FakeProvider.Script): FakeProvider.Script => {
    if (faulted.has(id)) return reply
    faulted.add(id)
    return fault
  }
  switch (kind) {
    case "complete":
    case "stream":
    case "consumerStops":
      return reply
    case "tools":
    case "toolStream":
      return request.rawBody.includes(`value-k${id}`)
        ? { kind: "reply", text: `done ${id}` }
        : { kind: "reply", toolCalls: [{ id: `call_${id}`, name: "lookup", arguments: { key: `k${id}` } }] }
    case "retry503":
      return once({ kind: "status", status: 503, type: "overloaded_error", message: "busy" })
    case "retry429":
      return once({ kind: "status", status: 429, headers: { "retry-after-ms": "2" } })
    case "resetBefore":
      return once({ kind: "reset" })
    case "inBandEarly":
      return once({ ...reply, inBandError: { afterEvents: 0, type: "overloaded_error", message: "Overloaded" } })
    case "hangOnce":
      return once({ kind: "hang" })
    case "resetMid":
      return { ...reply, resetAfterEvents: 6 }
    case "malformed":
      return { ...reply, malformedAfterEvents: 6 }
    case "cutOff":
      return { ...reply, omitTerminator: true }
    case "inBandLate":
      return { ...reply, inBandError: { afterEvents: 6, type: "overloaded_error", message: "Overloaded" } }
    case "badRequest":
      return { kind: "status", status: 400, type: "invalid_request_error", message: "bad request" }
    case "stall":
      return { ...reply, stallAfterEvents: 6, stallKeepAliveMs: 10 }
  }
}

/** Runs one soak call and says whether it ended as its kind must. */
const soakCall = (llm: Llm.Service, id: number, kind: SoakKind): Effect.Effect<string | undefined> => {
  const messages = [Message.user(`soak ${id} ${kind}`)]
  const text = soakText(id)
  const expected = soakExpected[kind]
  const provide = Effect.provideService(Llm, llm)
  const check = (result: CompletionResult, want: string) =>
    result.content === want ? undefined : `${kind} ${id}: got ${JSON.stringify(result.content)}`
  let call: Effect.Effect<string | undefined, LlmError | ToolExecutionError>
  switch (kind) {
    case "complete":
    case "retry503":
    case "resetBefore":
    case "badRequest":
      call = Effect.map(llm.complete(messages), (result) => check(result, text))
      break
    case "hangOnce":
      // alternately a whole request and a stream, each under a deadline short enough to keep the run quick
      // and long enough that a busy event loop does not miss it on the retry
      call = id % 2 === 0
        ? Effect.map(llm.complete(messages, { timeout: "300 millis" }), (result) => check(result, text))
        : Effect.map(
          LlmStream.collect(llm.stream(messages, { firstTokenTimeout: "300 millis" })),
          (result) => check(result, text)
        )
      break
    case "tools":
      call = provide(
        Effect.map(Toolkit.run(messages, soakKit), ({ added, result }) =>
          check(result, `done ${id}`) ??
            (added.length === 3 ? undefined : `${kind} ${id}: added ${added.length} messages`))
      )
      break
    case "toolStream":
      call = provide(
        Effect.map(LlmStream.collect(Toolkit.stream(messages, soakKit)), (result) => check(result, `done ${id}`))
      )
      break
    case "consumerStops":
      call = Effect.map(Stream.runCollect(Stream.take(LlmStream.textDeltas(llm.stream(messages)), 2)), (deltas) => {
        const got = Chunk.join(deltas, "")
        return got.length > 0 && text.startsWith(got) ? undefined : `${kind} ${id}: got ${JSON.stringify(got)}`
      })
      break
    case "stall":
      call = Effect.map(
        LlmStream.collect(llm.stream(messages, { idleTimeout: "100 millis" })),
        (result) => check(result, text)
      )
      break
    default:
      call = Effect.map(LlmStream.collect(llm.stream(messages)), (result) => check(result, text))
  }
  return Effect.either(call).pipe(
    // every fault here ends within a second; a call still running after 20 s is stuck, and is reported as such
    Effect.timeoutTo({
      duration: "20 seconds",
      onTimeout: () => ({ _tag: "Stuck" }) as const,
      onSuccess: (either) => either
    }),
    Effect.map((either) => {
      if (either._tag === "Stuck") return `${kind} ${id}: still running after 20 s (${backendOf(id)})`
      if (either._tag === "Right") {
        return expected === "ok"
          ? either.right
          : `${kind} ${id}: succeeded, expected ${expected}`
      }
      const error = either.left
      if (error._tag !== expected) return `${kind} ${id}: ${error._tag}: ${error.message}`
      if (kind === "stall" && !(error._tag === "LlmTimeoutError" && error.kind === "idle")) {
        return `${kind} ${id}: ${error.message}`
      }
      return undefined
    })
  )
}

/** The backend soak call `id` goes to. */
const backendOf = (id: number): string => backends[id % backends.length]!.name

/**
 * A long mixed run over all four backends (two wire formats) on one fake
 * server: whole requests, streams, tool loops (whole and streamed), consumers
 * that stop early, and faults (statuses, resets, hangs, stalls, malformed and
 * cut-off streams, in-band errors), each call checked against the outcome its
 * kind must have. Snapshots are taken before the layers exist, after a
 * warm-up, after the run, and after the layers are closed.
 */
export const soak = (options: {
  readonly calls: number
  readonly concurrency?: number
  readonly warmup?: number
  readonly seed?: number
  /** Called every 1000 calls with the number done. */
  readonly progress?: (done: number) => void
  /** Called at the baseline and after the soak (layers open, heap settled), e.g. to take heap snapshots. */
  readonly inspect?: (at: "baseline" | "after") => Promise<void>
}): Effect.Effect<SoakFigures> =>
  Effect.scoped(Effect.gen(function*() {
    const concurrency = options.concurrency ?? 32
    const fake = yield* server
    const faulted = new Set<number>()
    fake.respond((request) => soakScript(request, faulted))
    const supervisor = yield* Supervisor.track
    const snapshot = (heap: number) =>
      Effect.map(supervisor.value, (fibers): Snapshot => {
        const counts = resourceCounts()
        return {
          heap,
          serverSockets: fake.openConnections,
          sockets: counts.sockets,
          timers: counts.timers,
          handles: counts.all,
          fibers: fibers.length
        }
      })
    const start = yield* snapshot(yield* Effect.promise(settledHeap))

    const built = yield* Effect.forEach(backends, (b) => buildLlm(b.layer(fake.url)))
    const rng = random(options.seed ?? 6)
    const plan = (n: number, offset: number) =>
      Array.from({ length: n }, (_, i) => ({ id: offset + i, kind: rng.weighted(soakMix) }))
    const kinds: Record<string, { calls: number; asExpected: number }> = {}
    const unexpectedSamples: Array<string> = []
    let unexpected = 0
    let done = 0
    const run = (calls: ReadonlyArray<{ readonly id: number; readonly kind: SoakKind }>, record: boolean) =>
      Effect.forEach(calls, ({ id, kind }) =>
        Effect.map(soakCall(built[id % built.length]!.llm, id, kind), (problem) => {
          if (record) {
            const entry = kinds[kind] ??= { calls: 0, asExpected: 0 }
            entry.calls++
            if (problem === undefined) entry.asExpected++
            else {
              unexpected++
              if (unexpectedSamples.length < 10) unexpectedSamples.push(problem)
            }
            if (++done % 1000 === 0) {
              fake.clearRequests()
              options.progress?.(done)
            }
          }
        }), { concurrency, discard: true }).pipe(Effect.supervised(supervisor))

    const warm = options.warmup ?? 400
    yield* run(plan(warm, 0), false)
    yield* settle(() => fake.stats.active, (active) => active === 0)
    fake.clearRequests()
    const baseline = yield* snapshot(yield* Effect.promise(settledHeap))
    if (options.inspect) yield* Effect.promise(() => options.inspect!("baseline"))
    const before = fake.stats

    const memory = sampleMemory(50)
    const started = Date.now()
    yield* run(plan(options.calls, warm), true)
    const elapsedMillis = Date.now() - started
    const peaks = memory.stop()

    // in flight on the server, fibers and timers: back to the baseline while the layers stay open
    const open = yield* settle(
      () => ({ active: fake.stats.active, timers: resourceCounts().timers }),
      ({ active, timers }) => active === 0 && timers <= baseline.timers
    )
    const fibersAfterRun = yield* fibersLeft(supervisor)
    fake.clearRequests()
    faulted.clear()
    const after = yield* snapshot(yield* Effect.promise(settledHeap))
    if (options.inspect) yield* Effect.promise(() => options.inspect!("after"))
    const stats = fake.stats

    const closed = yield* closeAndSettle(built, fake, start)
    return {
      calls: options.calls,
      concurrency,
      kinds,
      unexpected,
      unexpectedSamples,
      requests: stats.received - before.received,
      closedByClient: stats.closedByClient - before.closedByClient,
      connections: stats.connections - before.connections,
      start,
      baseline,
      after,
      closed: yield* snapshot(yield* Effect.promise(settledHeap)),
      heapGrowth: after.heap - baseline.heap,
      settledOpen: open.held && fibersAfterRun === 0,
      settledClosed: closed.held,
      memory: peaks,
      elapsedMillis
    }
  }))

// ---------------------------------------------------------------------------
// Interruption storm
// ---------------------------------------------------------------------------

/** What an interruption storm measured. */
export interface StormFigures {
  readonly streams: number
  /** Streams interrupted before they ended. */
  readonly interrupted: number
  /** Streams that ended on their own before the interruption came. */
  readonly completed: number
  /** Streams that failed with an error (must be none). */
  readonly failed: number
  readonly failures: ReadonlyArray<string>
  /** Requests the server saw closed by the client before their response finished. */
  readonly closedByClient: number
  /** Requests whose response the server wrote completely. */
  readonly finishedRequests: number
  /** Requests the server received, the conversations' first turns included. */
  readonly requests: number
  /** Requests still open at the server after the storm (must be 0). */
  readonly inFlightAfter: number
  /** Fibers of the storm still running afterwards (must be 0). */
  readonly fibersAfter: number
  /** Conversations touched by an interrupted turn. */
  readonly conversations: number
  /** Conversations whose history `validateRequest` refuses (must be 0), with reasons. */
  readonly invalidConversations: ReadonlyArray<string>
  /** Conversations whose last turn was recorded as interrupted (barge-in). */
  readonly recordedInterrupted: number
  /** Conversations that then completed a normal turn (must be all). */
  readonly continued: number
  /** Every log line the storm produced, at any level (must be none: no error is expected, handled or not). */
  readonly badLogs: ReadonlyArray<RecordedLog>
  /** unhandledRejection / uncaughtException seen (must be none). */
  readonly processErrors: number
  /** Whether sockets and timers returned to the start once the layers were closed. */
  readonly settledClosed: boolean
  readonly start: { readonly sockets: number; readonly timers: number }
  readonly end: { readonly sockets: number; readonly timers: number; readonly serverSockets: number }
}

const slowLookup = Tool.make("slow_lookup", {
  description: "Looks a key up, slowly",
  parameters: Schema.Struct({ key: Schema.String }),
  handler: ({ key }) => Effect.as(Effect.sleep(`${key.length % 7 * 3} millis`), `value-${key}`)
})
const stormKit = Toolkit.make(slowLookup)

/** The last message of a request body: a user's words or a tool result, in either wire format. */
const endsWithToolResult = (body: unknown): boolean => {
  const messages = (body as { messages?: ReadonlyArray<{ role?: string; content?: unknown }> } | undefined)?.messages ??
    []
  const last = messages[messages.length - 1]
  if (last === undefined) return false
  if (last.role === "tool") return true
  return Array.isArray(last.content) && last.content.some((block: { type?: string }) => block.type === "tool_result")
}

/**
 * Starts `streams` streams at once and interrupts each at a random point
 * (after a random number of events or a random delay, whichever comes first):
 * half are plain `Llm.stream` calls, half are `Conversation.sendStream` turns,
 * some running a tool loop, so interruptions land before the response, mid-
 * text, during a tool call and in a second model call. Afterwards the server
 * must have seen every connection finished or closed, no fiber may be left,
 * nothing may be logged, and each conversation must be valid and usable.
 */
export const storm = (options: { readonly streams: number; readonly seed?: number }): Effect.Effect<StormFigures> =>
  Effect.scoped(Effect.gen(function*() {
    const fake = yield* server
    fake.respond((request) => {
      // the last user words in the history: "storm <id>", "storm <id> tool"
      const tag = [...request.rawBody.matchAll(/storm (\d+)( tool)?/g)].pop()
      if (tag === undefined) return undefined
      const id = Number(tag[1])
      const text = `Storm ${id}: ${"words keep coming ".repeat(6)}end.`
      if (tag[2] !== undefined && !endsWithToolResult(request.body)) {
        return {
          kind: "reply",
          text: "Let me look.",
          toolCalls: [{ name: "slow_lookup", arguments: { key: `k${id}` } }],
          delayMs: 2
        }
      }
      return { kind: "reply", text, chunkSize: 4, delayMs: 3 }
    })
    const startCounts = resourceCounts()
    const { layer: logLayer, logs } = recordLogs()
    const supervisor = yield* Supervisor.track
    const built = yield* Effect.forEach(backends, (b) => buildLlm(b.layer(fake.url)))
    const rng = random(options.seed ?? 500)
    const half = Math.floor(options.streams / 2)

    const { processErrors, value } = yield* watchProcessErrors(
      Effect.gen(function*() {
        // conversations with one completed turn each
        const conversations = yield* Effect.forEach(
          Array.from({ length: options.streams - half }, (_, i) => i),
          (i) =>
            Effect.gen(function*() {
              const llm = built[i % built.length]!.llm
              const conversation = yield* Conversation.make(makeContext({ systemMessage: "Be brief." })).pipe(
                Effect.provideService(Llm, llm)
              )
              yield* Effect.orDie(conversation.send(`storm ${100_000 + i}`))
              return conversation
            }),
          { concurrency: 64 }
        )

        type Outcome = "interrupted" | "completed" | string
        /**
         * Where the interruption lands: a short delay (while connecting, before the
         * response), after a random number of events (mid-text, mid-tool-call), or
         * shortly after a tool call completed (while the tool runs, or early in
         * the next model call).
         */
        const pickPoint = (tool: boolean) => {
          const roll = rng.next()
          if (roll < 0.2) {
            return { kind: "delay", millis: rng.int(0, 30) } as const
          }
          if (tool && roll > 0.75) {
            return { kind: "afterTool", millis: rng.int(0, 20) } as const
          }
          return { kind: "events", events: rng.int(1, tool ? 45 : 32) } as const
        }
        const interruptAtRandom = (id: number, tool: boolean, events: Stream.Stream<LlmStream.StreamEvent, unknown>) =>
          Effect.gen(function*() {
            const point = pickPoint(tool)
            const reached = yield* Deferred.make<void>()
            let seen = 0
            const fiber = yield* Effect.fork(
              Stream.runForEach(events, (event) => {
                seen++
                if (point.kind === "events" && seen >= point.events) return Deferred.succeed(reached, undefined)
                if (point.kind === "afterTool" && event._tag === "ToolCall") return Deferred.succeed(reached, undefined)
                return Effect.void
              })
            )
            const trigger = point.kind === "delay"
              ? Effect.sleep(point.millis)
              : point.kind === "events"
              ? Deferred.await(reached)
              : Effect.zipRight(Deferred.await(reached), Effect.sleep(point.millis))
            yield* Effect.raceFirst(trigger, Fiber.await(fiber))
            const exit = yield* Fiber.interrupt(fiber)
            if (Exit.isSuccess(exit)) return "completed" as Outcome
            if (Cause.isInterruptedOnly(exit.cause)) return "interrupted" as Outcome
            return `stream ${id}: ${String(exit.cause)}` as Outcome
          })

        const outcomes = yield* Effect.forEach(Array.from({ length: options.streams }, (_, id) => id), (id) => {
          if (id < half) {
            return interruptAtRandom(id, false, built[id % built.length]!.llm.stream([Message.user(`storm ${id}`)]))
          }
          const conversation = conversations[id - half]!
          const tool = id % 2 === 0
          return interruptAtRandom(
            id,
            tool,
            conversation.sendStream(`storm ${id}${tool ? " tool" : ""}`, tool ? { toolkit: stormKit } : {})
          )
        }, { concurrency: "unbounded" })
        return { conversations, outcomes }
      }).pipe(Effect.supervised(supervisor), Effect.provide(logLayer))
    )

    const { conversations, outcomes } = value
    const failures = outcomes.filter((o) => o !== "interrupted" && o !== "completed")
    // every connection finished or closed by the client: nothing left in flight at the server
    const inFlight = yield* settle(() => fake.stats.active, (active) => active === 0)
    const stormStats = fake.stats
    const fibers = yield* fibersLeft(supervisor)

    // every touched conversation is valid, and goes on
    const invalid: Array<string> = []
    let recordedInterrupted = 0
    let continued = 0
    yield* Effect.forEach(conversations, (conversation, i) =>
      Effect.gen(function*() {
        const context = yield* conversation.context
        const problem = validateRequest(context.messages, {})
        if (problem !== undefined) invalid.push(`conversation ${i}: ${problem}`)
        const last = context.messages[context.messages.length - 1]
        if (last?.role === "assistant" && last.interrupted === true) recordedInterrupted++
        const next = yield* Effect.either(conversation.send(`storm ${200_000 + i}`))
        const after = yield* conversation.context
        if (next._tag === "Right" && validateRequest(after.messages, {}) === undefined) continued++
        else {invalid.push(
            `conversation ${i}: the next turn ${
              next._tag === "Left" ? `failed: ${next.left.message}` : "left an invalid history"
            }`
          )}
      }), { concurrency: 64, discard: true }).pipe(Effect.provide(logLayer))

    const closed = yield* closeAndSettle(built, fake, startCounts)
    return {
      streams: options.streams,
      interrupted: outcomes.filter((o) => o === "interrupted").length,
      completed: outcomes.filter((o) => o === "completed").length,
      failed: failures.length,
      failures: failures.slice(0, 5),
      closedByClient: stormStats.closedByClient,
      finishedRequests: stormStats.finished,
      requests: stormStats.received,
      inFlightAfter: inFlight.value,
      fibersAfter: fibers,
      conversations: conversations.length,
      invalidConversations: invalid,
      recordedInterrupted,
      continued,
      // nothing is expected in the log at all: any line at any level is reported
      badLogs: logs,
      processErrors: processErrors.length,
      settledClosed: closed.held,
      start: { sockets: startCounts.sockets, timers: startCounts.timers },
      end: { sockets: closed.value.sockets, timers: closed.value.timers, serverSockets: closed.value.serverSockets }
    }
  }))

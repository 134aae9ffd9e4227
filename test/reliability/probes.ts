/**
 * Measuring what a run leaves behind: heap after a forced garbage collection,
 * the process's active handles (sockets, timers, servers), peak memory while
 * a run goes, and an error/log recorder. Shared by the reliability tests and
 * the full-sized scripts under `scripts/`.
 */
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

let collect: (() => void) | undefined

/** Forces a full garbage collection (exposing `gc` at run time when node was not started with --expose-gc). */
export const gc = (): void => {
  if (collect === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc
    if (typeof exposed === "function") {
      collect = exposed
    } else {
      setFlagsFromString("--expose-gc")
      collect = runInNewContext("gc") as () => void
    }
  }
  collect()
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Heap in use after letting pending callbacks run and collecting garbage three times. */
export const settledHeap = async (): Promise<number> => {
  for (let i = 0; i < 3; i++) {
    await tick()
    gc()
  }
  return process.memoryUsage().heapUsed
}

/** The process's active resources by kind (`TCPSocketWrap`, `Timeout`, `TCPServerWrap`, ...). */
export const handles = (): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) out[kind] = (out[kind] ?? 0) + 1
  return out
}

/** Sockets (client and server ends, in-process) and pending timers among the active resources. */
export const resourceCounts = () => {
  const all = handles()
  return { sockets: all["TCPSocketWrap"] ?? 0, timers: all["Timeout"] ?? 0, all }
}

/** Polls `read` until `ok` holds or `timeoutMs` passes; returns the last reading and whether it held. */
export const eventually = async <A>(
  read: () => A,
  ok: (value: A) => boolean,
  timeoutMs = 10_000
): Promise<{ readonly value: A; readonly held: boolean }> => {
  const until = Date.now() + timeoutMs
  for (;;) {
    const value = read()
    if (ok(value)) return { value, held: true }
    if (Date.now() > until) return { value, held: false }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Peak memory while a run goes, sampled every `everyMs`. */
export interface MemoryPeaks {
  /** Highest resident set size sampled (bytes). */
  readonly peakRss: number
  /** Highest V8 heap in use sampled (bytes). */
  readonly peakHeap: number
  /** Highest heap + external + array buffers sampled (bytes): what JS holds, Buffers included. */
  readonly peakJs: number
  /** The kernel's peak RSS of the whole process lifetime (bytes). */
  readonly maxRss: number
}

/** Starts sampling memory; `stop()` ends it and returns the peaks. */
export const sampleMemory = (everyMs = 10) => {
  let peakRss = 0
  let peakHeap = 0
  let peakJs = 0
  const sample = () => {
    const usage = process.memoryUsage()
    peakRss = Math.max(peakRss, usage.rss)
    peakHeap = Math.max(peakHeap, usage.heapUsed)
    peakJs = Math.max(peakJs, usage.heapUsed + usage.external + usage.arrayBuffers)
  }
  sample()
  const timer = setInterval(sample, everyMs)
  return {
    stop: (): MemoryPeaks => {
      clearInterval(timer)
      sample()
      return { peakRss, peakHeap, peakJs, maxRss: process.resourceUsage().maxRSS * 1024 }
    }
  }
}

/** Megabytes with one decimal, for reports. */
export const mb = (bytes: number): number => Math.round(bytes / 1024 / 102.4) / 10

/** One log line as recorded. */
export interface RecordedLog {
  readonly level: string
  readonly message: string
  /** The line as Effect's logfmt logger would print it (annotations and spans included). */
  readonly formatted: string
}

/**
 * A logger that records every line at every level (Debug and Trace included,
 * so Effect's "Fiber terminated with an unhandled error" reports are seen), in
 * place of the default logger.
 */
export const recordLogs = () => {
  const logs: Array<RecordedLog> = []
  const recorder = Logger.make((options) => {
    const formatted = Logger.logfmtLogger.log(options)
    const json = Logger.jsonLogger.log(options)
    const annotations = HashMap.toEntries(options.annotations).map(([key, value]) => `${key}=${String(value)}`)
    const spans = List.toArray(options.spans).map((span) => span.label)
    logs.push({
      level: options.logLevel.label,
      message: Array.isArray(options.message) ? options.message.map(String).join(" ") : String(options.message),
      formatted: [formatted, json, ...annotations, ...spans].join("\n")
    })
  })
  const layer = Layer.merge(Logger.replace(Logger.defaultLogger, recorder), Logger.minimumLogLevel(LogLevel.All))
  return { logs, layer }
}

/** Records `unhandledRejection` and `uncaughtException` while `effect` runs. */
export const watchProcessErrors = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const seen: Array<unknown> = []
      const onError = (error: unknown) => {
        seen.push(error)
      }
      process.on("unhandledRejection", onError)
      process.on("uncaughtException", onError)
      return { seen, onError }
    }),
    ({ seen }) => Effect.map(effect, (value) => ({ value, processErrors: seen })),
    ({ onError }) =>
      Effect.sync(() => {
        process.off("unhandledRejection", onError)
        process.off("uncaughtException", onError)
      })
  )

/** A small seeded PRNG (mulberry32): the same seed gives the same run. */
export const random = (seed: number) => {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    /** An integer in [min, max]. */
    int: (min: number, max: number): number => min + Math.floor(next() * (max - min + 1)),
    /** An item picked by weight. */
    weighted: <A>(items: ReadonlyArray<readonly [A, number]>): A => {
      const total = items.reduce((sum, [, weight]) => sum + weight, 0)
      let at = next() * total
      for (const [item, weight] of items) {
        at -= weight
        if (at < 0) return item
      }
      return items[items.length - 1]![0]
    }
  }
}

/**
 * One benchmark process: builds one client, runs its scenarios against the
 * fake server, checks every reply carried the exact text, and prints the
 * measurements as one JSON line. The runner starts a fresh worker for every
 * (client, scenario, repetition), so no run inherits another's heap or JIT
 * state, and peak RSS belongs to that run alone (`--quick` runs all the
 * scenarios of a client in one process, to save the start-up time).
 */
import { writeFileSync } from "node:fs"
import * as inspector from "node:inspector/promises"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import type { BenchClient, ClientFactory } from "./client.js"
import { runMicro } from "./micro.js"
import { chunkCount, expectedText } from "./payloads.js"
import { pool } from "./pool.js"
import { clients, type ScenarioName, scenarios, type Size } from "./registry.js"

/** What the runner passes in `argv[2]` (JSON). */
export interface WorkerArgs {
  readonly client?: string
  readonly scenarios?: ReadonlyArray<ScenarioName>
  readonly micro?: boolean
  readonly origin: string
  readonly quick: boolean
  /** Overrides the `stream-1000-model` scenario's `durationMillis`. */
  readonly durationMillis?: number | undefined
  /** Where to write a CPU profile of each measured phase, if anywhere. */
  readonly profileDir?: string | undefined
  /** The repetition, to name the profiles. */
  readonly rep?: number | undefined
}

/** Named measurements. */
export type Metrics = Readonly<Record<string, number>>

/** What a worker prints: the measurements of each scenario it ran (or of the micro benchmarks, under `micro`). */
export type WorkerResult = Readonly<Record<string, Metrics>>

const check = (text: string): void => {
  if (text !== expectedText) {
    throw new Error(`wrong text: got ${text.length} chars ${JSON.stringify(text.slice(0, 60))}…`)
  }
}

const completeOnce = async (client: BenchClient): Promise<void> => check(await client.complete())

const streamOnce = async (client: BenchClient, onFirst?: () => void): Promise<void> => {
  const parts: Array<string> = []
  await client.stream((text) => {
    if (parts.length === 0 && onFirst !== undefined) onFirst()
    parts.push(text)
  })
  check(parts.join(""))
}

const sequential = async (count: number, task: () => Promise<void>): Promise<void> => {
  for (let i = 0; i < count; i++) await task()
}

/** Runs `round` until it ran `size.warmup` calls in all and `size.warmupMillis` passed. */
const warmUp = async (size: Size, round: (count: number) => Promise<void>): Promise<void> => {
  const start = performance.now()
  await round(size.warmup)
  while (performance.now() - start < size.warmupMillis) await round(Math.max(1, size.warmup >> 2))
}

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p + 0.5))]!

/**
 * Brackets a measured phase: CPU and wall time, and, when asked, a V8 CPU
 * profile of exactly that phase (not the start-up or the warm-up).
 */
interface Phase {
  /** Runs `task` as the measured phase; returns its CPU (user + system) and wall microseconds. */
  readonly measure: (
    task: () => Promise<void>
  ) => Promise<{ readonly cpu: number; readonly system: number; readonly wall: number }>
}

const makePhase = (profileFile: string | undefined): Phase => ({
  measure: async (task) => {
    const session = profileFile === undefined ? undefined : new inspector.Session()
    if (session !== undefined) {
      session.connect()
      await session.post("Profiler.enable")
      await session.post("Profiler.setSamplingInterval", { interval: 100 })
      await session.post("Profiler.start")
    }
    const cpu = process.cpuUsage()
    const start = performance.now()
    await task()
    const wall = (performance.now() - start) * 1000
    const used = process.cpuUsage(cpu)
    if (session !== undefined) {
      const { profile } = await session.post("Profiler.stop")
      writeFileSync(profileFile!, JSON.stringify(profile))
      session.disconnect()
    }
    return { cpu: used.user + used.system, system: used.system, wall }
  }
})

/** Runs one scenario; returns its measurements. */
const run = async (
  client: BenchClient,
  scenario: ScenarioName,
  size: Size,
  phase: Phase,
  chunks: number
): Promise<Record<string, number>> => {
  switch (scenario) {
    case "complete-seq": {
      await warmUp(size, (count) => sequential(count, () => completeOnce(client)))
      const { cpu, system, wall } = await phase.measure(() => sequential(size.count, () => completeOnce(client)))
      return {
        cpuPerCallMicros: cpu / size.count,
        systemPerCallMicros: system / size.count,
        wallPerCallMicros: wall / size.count
      }
    }
    case "complete-64": {
      await warmUp(size, (count) => pool(count, 64, () => completeOnce(client)))
      const { cpu, wall } = await phase.measure(() => pool(size.count, 64, () => completeOnce(client)))
      return { callsPerSecond: size.count / (wall / 1e6), cpuPerCallMicros: cpu / size.count }
    }
    case "stream-seq":
    case "stream-paced": {
      await warmUp(size, (count) => sequential(count, () => streamOnce(client)))
      const { cpu, system, wall } = await phase.measure(() => sequential(size.count, () => streamOnce(client)))
      return {
        cpuPerChunkMicros: cpu / (size.count * chunks),
        systemPerChunkMicros: system / (size.count * chunks),
        wallPerStreamMillis: wall / 1000 / size.count
      }
    }
    case "stream-256": {
      await warmUp(size, (count) => pool(count, count, () => streamOnce(client)))
      const before = process.memoryUsage.rss()
      const { cpu, wall } = await phase.measure(() => pool(size.count, size.count, () => streamOnce(client)))
      return {
        wallMillis: wall / 1000,
        cpuPerChunkMicros: cpu / (size.count * chunks),
        peakRssMB: (process.resourceUsage().maxRSS * 1024) / 1e6,
        rssBeforeMB: before / 1e6
      }
    }
    case "stream-1000-model": {
      // one round of `warmup` streams at once, then `count` lanes, each starting stream after stream until the time is up
      await pool(size.warmup, size.warmup, () => streamOnce(client))
      const duration = size.durationMillis ?? 10_000
      let streams = 0
      const lanes = async (): Promise<void> => {
        const end = performance.now() + duration
        await Promise.all(Array.from({ length: size.count }, async () => {
          while (performance.now() < end) {
            await streamOnce(client)
            streams++
          }
        }))
      }
      const { cpu, wall } = await phase.measure(lanes)
      const cpuPerChunk = cpu / (streams * chunks)
      return {
        cpuPerChunkMicros: cpuPerChunk,
        peakRssMB: (process.resourceUsage().maxRSS * 1024) / 1e6,
        // one conversation at the nominal 50 events/s costs `cpuPerChunk * 50` µs of CPU a second:
        // a core sustains the inverse (from CPU per chunk, so it holds when this run saturated the client)
        conversationsPerCore: 1e6 / (cpuPerChunk * 50),
        // the pace each conversation actually got: below 50 when the client (or the server) saturated
        eventsPerSecondPerConversation: (streams * chunks) / (wall / 1e6) / size.count,
        wallMillis: wall / 1000,
        streams
      }
    }
    case "ttft":
    case "ttft-delayed": {
      const samples: Array<number> = []
      const sample = async () => {
        const start = performance.now()
        let first = 0
        await streamOnce(client, () => {
          first = performance.now()
        })
        samples.push((first - start) * 1000)
      }
      await warmUp(size, (count) => sequential(count, sample))
      samples.length = 0
      await phase.measure(() => sequential(size.count, sample))
      samples.sort((a, b) => a - b)
      return {
        p50Micros: percentile(samples, 0.5),
        p90Micros: percentile(samples, 0.9),
        p99Micros: percentile(samples, 0.99)
      }
    }
  }
}

const withDuration = (size: Size, durationMillis: number | undefined): Size =>
  durationMillis === undefined ? size : { ...size, durationMillis }

const main = async (): Promise<void> => {
  const args = JSON.parse(process.argv[2] ?? "{}") as WorkerArgs
  const result: Record<string, Metrics> = {}
  if (args.micro === true) {
    result.micro = await runMicro(args.quick)
  } else {
    const spec = clients.find((client) => client.name === args.client)
    if (spec === undefined) throw new Error(`unknown client: ${process.argv[2]}`)
    // a computed path: the bundler must not pull every client into the worker
    const modulePath = "./clients/" + spec.module + ".js"
    const factory = ((await import(modulePath)) as { readonly default: ClientFactory }).default
    for (const name of args.scenarios ?? []) {
      const scenario = scenarios.find((scenario) => scenario.name === name)
      if (scenario === undefined) throw new Error(`unknown scenario: ${name}`)
      const client = await factory({
        origin: args.origin,
        mode: scenario.mode,
        protocol: spec.protocol,
        variant: spec.variant
      })
      const profileFile = args.profileDir === undefined
        ? undefined
        : path.join(args.profileDir, `${spec.name}-${name}-${args.rep ?? 0}.cpuprofile`)
      result[name] = await run(
        client,
        name,
        withDuration(args.quick ? scenario.quick : scenario.full, args.durationMillis),
        makePhase(profileFile),
        spec.chunks ?? chunkCount
      )
      await client.close()
    }
  }
  process.stdout.write(JSON.stringify(result) + "\n")
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    process.exit(1)
  }
)

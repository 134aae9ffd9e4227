/**
 * One benchmark process: builds one client, runs its scenarios against the
 * fake server, checks every reply carried the exact text, and prints the
 * measurements as one JSON line. The runner starts a fresh worker for every
 * (client, scenario, repetition), so no run inherits another's heap or JIT
 * state, and peak RSS belongs to that run alone (`--quick` runs the
 * scenarios other than `stream-256` in one process per client, to save the
 * start-up time).
 */
import { performance } from "node:perf_hooks"
import type { BenchClient, ClientFactory } from "./client.js"
import { runMicro } from "./micro.js"
import { chunkCount, expectedText } from "./payloads.js"
import { clients, type ScenarioName, scenarios, type Size } from "./registry.js"

/** What the runner passes in `argv[2]` (JSON). */
export interface WorkerArgs {
  readonly client?: string
  readonly scenarios?: ReadonlyArray<ScenarioName>
  readonly micro?: boolean
  readonly origin: string
  readonly quick: boolean
}

/** Named measurements. */
export type Metrics = Readonly<Record<string, number>>

/** What a worker prints: the measurements of each scenario it ran (or of the micro benchmarks, under `micro`). */
export type WorkerResult = Readonly<Record<string, Metrics>>

/** Microseconds of CPU (user + system, all threads) since `start`. */
const cpuMicros = (start: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(start)
  return used.user + used.system
}

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

/** Runs `task` `count` times with at most `concurrency` in flight. */
const pool = async (count: number, concurrency: number, task: () => Promise<void>): Promise<void> => {
  let started = 0
  const lane = async () => {
    while (started < count) {
      started++
      await task()
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane))
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

/** Runs one scenario; returns its measurements. */
const run = async (client: BenchClient, scenario: ScenarioName, size: Size): Promise<Record<string, number>> => {
  switch (scenario) {
    case "complete-seq": {
      await warmUp(size, (count) => sequential(count, () => completeOnce(client)))
      const cpu = process.cpuUsage()
      const start = performance.now()
      await sequential(size.count, () => completeOnce(client))
      const used = process.cpuUsage(cpu)
      return {
        cpuPerCallMicros: cpuMicros(cpu) / size.count,
        systemPerCallMicros: used.system / size.count,
        wallPerCallMicros: ((performance.now() - start) * 1000) / size.count
      }
    }
    case "complete-64": {
      await warmUp(size, (count) => pool(count, 64, () => completeOnce(client)))
      const cpu = process.cpuUsage()
      const start = performance.now()
      await pool(size.count, 64, () => completeOnce(client))
      const seconds = (performance.now() - start) / 1000
      return { callsPerSecond: size.count / seconds, cpuPerCallMicros: cpuMicros(cpu) / size.count }
    }
    case "stream-seq":
    case "stream-paced": {
      await warmUp(size, (count) => sequential(count, () => streamOnce(client)))
      const cpu = process.cpuUsage()
      const start = performance.now()
      await sequential(size.count, () => streamOnce(client))
      const used = process.cpuUsage(cpu)
      return {
        cpuPerChunkMicros: cpuMicros(cpu) / (size.count * chunkCount),
        systemPerChunkMicros: used.system / (size.count * chunkCount),
        wallPerStreamMillis: (performance.now() - start) / size.count
      }
    }
    case "stream-256": {
      await warmUp(size, (count) => pool(count, count, () => streamOnce(client)))
      const before = process.memoryUsage.rss()
      const cpu = process.cpuUsage()
      const start = performance.now()
      await pool(size.count, size.count, () => streamOnce(client))
      return {
        wallMillis: performance.now() - start,
        cpuPerChunkMicros: cpuMicros(cpu) / (size.count * chunkCount),
        peakRssMB: (process.resourceUsage().maxRSS * 1024) / 1e6,
        rssBeforeMB: before / 1e6
      }
    }
    case "ttft": {
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
      await sequential(size.count, sample)
      samples.sort((a, b) => a - b)
      return { p50Micros: percentile(samples, 0.5), p99Micros: percentile(samples, 0.99) }
    }
  }
}

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
      const client = await factory({ origin: args.origin, mode: scenario.mode, protocol: spec.protocol })
      result[name] = await run(client, name, args.quick ? scenario.quick : scenario.full)
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

/**
 * The benchmark runner (`npm run bench [-- options]`).
 *
 * Builds `bench/` (and, through the effect-llm client, `src/`) to plain
 * JavaScript with esbuild so no TypeScript loader sits in a measured process,
 * starts the fake server in its own process, then for every repetition, every
 * scenario and every client (in a shuffled order, so repetitions interleave)
 * starts a fresh worker process and collects its measurements. Prints the
 * tables (ratios to the raw client of the same protocol: medians over the
 * repetitions with their min–max spread) and the targets.
 *
 * Options:
 *   --quick              fewer calls, one repetition, one process per client (under a minute;
 *                        a smoke test: figures are rough, and peak RSS covers every scenario)
 *   --reps N             repetitions (default 3; 1 with --quick)
 *   --clients a,b        only these clients (raw baselines are always added)
 *   --scenarios a,b      only these scenarios (stream-1000-model runs only when named here)
 *   --no-micro           skip the in-process measurements
 *   --layered            also the layers users stack (Fallback, Conversation, Toolkit, sentences, speak,
 *                        streamObject) on the stream CPU rows, compared with bare effect-llm and raw
 *   --duration MS        how long the stream-1000-model conversations stream (default 10000; 3000 with --quick)
 *   --json FILE          also write every raw measurement as JSON
 *   --profile DIR        write a CPU profile of every measured phase to DIR (read them with bench/profile.ts)
 *   --node-arg ARG       pass ARG to every worker's node (repeatable), e.g. --node-arg=--cpu-prof
 *   --build-only         only build to node_modules/.cache/effect-llm-bench (to run a worker by hand)
 */
import { build } from "esbuild"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { clients, type ClientSpec, layeredScenarios, protocols, type ScenarioName, scenarios } from "./registry.js"
import type { Metrics, WorkerArgs, WorkerResult } from "./worker.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const outdir = path.join(root, "node_modules", ".cache", "effect-llm-bench")

interface Options {
  readonly quick: boolean
  readonly reps: number
  readonly clients: ReadonlyArray<ClientSpec>
  readonly scenarios: ReadonlyArray<ScenarioName>
  readonly micro: boolean
  readonly layered: boolean
  readonly durationMillis: number | undefined
  readonly json: string | undefined
  readonly nodeArgs: ReadonlyArray<string>
  readonly buildOnly: boolean
  readonly profileDir: string | undefined
}

const parseOptions = (argv: ReadonlyArray<string>): Options => {
  const values = new Map<string, Array<string>>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}`)
    const eq = arg.indexOf("=")
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq)
    const flag = name === "quick" || name === "no-micro" || name === "build-only" || name === "layered"
    const value = eq >= 0 ? arg.slice(eq + 1) : flag ? "" : argv[++i]
    if (value === undefined) throw new Error(`${arg} needs a value`)
    values.set(name, [...(values.get(name) ?? []), value])
  }
  const list = (name: string) => values.get(name)?.flatMap((value) => value.split(",")).filter((s) => s !== "")
  const quick = values.has("quick")
  const wanted = list("clients")
  const layered = values.has("layered")
  const chosen = wanted === undefined
    ? clients.filter((client) => client.kind !== "layered" || layered)
    : clients.filter((client) =>
      client.kind === "raw" || wanted.includes(client.name) || (layered && client.kind === "layered") ||
      (layered && client.name === "effect-llm-chat")
    )
  for (const name of wanted ?? []) {
    if (!clients.some((client) => client.name === name)) throw new Error(`unknown client ${name}`)
  }
  const scenarioNames = list("scenarios") ??
    scenarios.filter((scenario) => scenario.optIn !== true).map((scenario) => scenario.name)
  for (const name of scenarioNames) {
    if (!scenarios.some((scenario) => scenario.name === name)) throw new Error(`unknown scenario ${name}`)
  }
  // a baseline is only needed for a protocol some other chosen client speaks
  const used = new Set(chosen.filter((client) => client.kind !== "raw").map((client) => client.protocol))
  return {
    quick,
    reps: Number(values.get("reps")?.[0] ?? (quick ? 1 : 3)),
    clients: wanted === undefined
      ? chosen
      : chosen.filter((client) => client.kind !== "raw" || used.has(client.protocol)),
    scenarios: scenarioNames as Array<ScenarioName>,
    micro: !values.has("no-micro"),
    layered,
    durationMillis: values.has("duration") ? Number(values.get("duration")![0]) : undefined,
    json: values.get("json")?.[0],
    nodeArgs: values.get("node-arg") ?? [],
    buildOnly: values.has("build-only"),
    profileDir: values.get("profile")?.[0] === undefined ? undefined : path.resolve(values.get("profile")![0]!)
  }
}

/** Builds every entry point to ESM JavaScript in `outdir`, keeping packages external. */
const buildAll = async (): Promise<void> => {
  const modules = [...new Set(clients.map((client) => client.module))]
  await build({
    entryPoints: [
      path.join(root, "bench/server.ts"),
      path.join(root, "bench/worker.ts"),
      path.join(root, "bench/importCost.ts"),
      ...modules.map((module) => path.join(root, `bench/clients/${module}.ts`))
    ],
    outbase: path.join(root, "bench"),
    outdir,
    bundle: true,
    packages: "external",
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: "linked",
    logLevel: "warning"
  })
  // the library as the published package is (scripts/build.ts), for the import cost
  execFileSync(process.execPath, [
    "--import",
    "tsx",
    "scripts/build.ts",
    "--out-dir",
    path.join(outdir, "lib"),
    "--no-declarations"
  ], {
    cwd: root,
    stdio: "inherit"
  })
  writeFileSync(path.join(outdir, "package.json"), JSON.stringify({ type: "module" }))
}

/** One import-cost process (`bench/importCost.ts`): `base` (effect and undici) or `library` on top. */
const runImportCost = (what: "base" | "library"): Promise<Metrics> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", path.join(outdir, "importCost.js"), what], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let stdout = ""
    child.stdout.on("data", (data: Buffer) => (stdout += data.toString()))
    child.on("exit", (code) =>
      code === 0 ? resolve(JSON.parse(stdout.trim()) as Metrics) : reject(new Error(`importCost ${what}: ${code}`)))
  })

/**
 * What importing the library costs on top of effect and undici: five fresh
 * processes of each, interleaved; the medians' differences (RSS and heap in
 * use after a full collection) and the import's median time.
 */
const importCost = async (): Promise<Metrics> => {
  const base: Array<Metrics> = []
  const library: Array<Metrics> = []
  for (let i = 0; i < 5; i++) {
    base.push(await runImportCost("base"))
    library.push(await runImportCost("library"))
  }
  const of = (runs: Array<Metrics>, name: string) => median(runs.map((run) => run[name]!))
  return {
    importRssMB: of(library, "rssMB") - of(base, "rssMB"),
    importHeapMB: of(library, "heapMB") - of(base, "heapMB"),
    importMillis: of(library, "importMillis"),
    baseRssMB: of(base, "rssMB"),
    baseHeapMB: of(base, "heapMB")
  }
}

/** Starts the fake server; resolves with its origin once it listens. */
const startServer = (): Promise<{ readonly origin: string; readonly process: ChildProcess }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(outdir, "server.js")], { stdio: ["pipe", "pipe", "inherit"] })
    let output = ""
    child.stdout.on("data", (data: Buffer) => {
      output += data.toString()
      const line = output.split("\n")[0]
      if (output.includes("\n") && line !== undefined) {
        resolve({ origin: `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`, process: child })
      }
    })
    child.on("error", reject)
    child.on("exit", (code) => reject(new Error(`server exited with ${code}`)))
  })

/** Runs one worker process; resolves with its measurements. */
const runWorker = (args: WorkerArgs, nodeArgs: ReadonlyArray<string>): Promise<WorkerResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, path.join(outdir, "worker.js"), JSON.stringify(args)], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (data: Buffer) => (stdout += data.toString()))
    child.stderr.on("data", (data: Buffer) => (stderr += data.toString()))
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000)
    child.on("exit", (code) => {
      clearTimeout(timer)
      const line = stdout.trim().split("\n").pop()
      if (code !== 0 || line === undefined || line === "") {
        reject(new Error(`worker ${JSON.stringify(args)} exited with ${code}:\n${stderr}`))
      } else {
        resolve(JSON.parse(line) as WorkerResult)
      }
    })
  })

const shuffled = <A>(items: ReadonlyArray<A>): Array<A> => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** Every measurement: `results[client][scenario][rep]`, and the micro ones per rep. */
interface Results {
  readonly runs: Record<string, Partial<Record<ScenarioName, Array<Metrics>>>>
  readonly micro: Array<Metrics>
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** A table row: which measurement, how it compares with raw, and the target for effect-llm. */
interface Row {
  readonly title: string
  readonly scenario: ScenarioName
  readonly metric: string
  readonly unit: string
  /** `ratio`: value / raw (lower is better unless `higherIsBetter`); `delta`: value − raw. */
  readonly compare: "ratio" | "delta"
  readonly higherIsBetter?: boolean
  /** The target for effect-llm: a ratio bound, or a delta bound in the metric's unit. */
  readonly target: number
}

const rows: ReadonlyArray<Row> = [
  {
    title: "sequential `complete`, CPU per call",
    scenario: "complete-seq",
    metric: "cpuPerCallMicros",
    unit: "µs",
    compare: "ratio",
    target: 2.5
  },
  {
    title: "`complete`, 64 in flight, calls/s",
    scenario: "complete-64",
    metric: "callsPerSecond",
    unit: "/s",
    compare: "ratio",
    higherIsBetter: true,
    target: 0.35
  },
  {
    title: "sequential streams, CPU per chunk",
    scenario: "stream-seq",
    metric: "cpuPerChunkMicros",
    unit: "µs",
    compare: "ratio",
    target: 1.3
  },
  {
    title: "paced stream, CPU per chunk",
    scenario: "stream-paced",
    metric: "cpuPerChunkMicros",
    unit: "µs",
    compare: "ratio",
    target: 1.6
  },
  {
    title: "256 concurrent streams, wall",
    scenario: "stream-256",
    metric: "wallMillis",
    unit: "ms",
    compare: "ratio",
    target: 1.6
  },
  {
    title: "256 concurrent streams, peak RSS",
    scenario: "stream-256",
    metric: "peakRssMB",
    unit: "MB",
    compare: "ratio",
    target: 1.1
  },
  {
    title: "1,000 conversations at 50 events/s, CPU per chunk",
    scenario: "stream-1000-model",
    metric: "cpuPerChunkMicros",
    unit: "µs",
    compare: "ratio",
    target: 1.3
  },
  {
    title: "1,000 conversations at 50 events/s, peak RSS",
    scenario: "stream-1000-model",
    metric: "peakRssMB",
    unit: "MB",
    compare: "ratio",
    target: Infinity
  },
  {
    title: "1,000 conversations at 50 events/s, conversations one core sustains",
    scenario: "stream-1000-model",
    metric: "conversationsPerCore",
    unit: "",
    compare: "ratio",
    higherIsBetter: true,
    target: Infinity
  },
  {
    title: "1,000 conversations at 50 events/s, events/s each got (50 unless the run saturated)",
    scenario: "stream-1000-model",
    metric: "eventsPerSecondPerConversation",
    unit: "/s",
    compare: "ratio",
    higherIsBetter: true,
    target: Infinity
  },
  {
    title: "time to first token, p50",
    scenario: "ttft",
    metric: "p50Micros",
    unit: "µs",
    compare: "delta",
    target: 300
  },
  {
    title: "time to first token, p99",
    scenario: "ttft",
    metric: "p99Micros",
    unit: "µs",
    compare: "delta",
    target: Infinity
  },
  {
    title: "time to first token, 5 ms pause then one write, p50",
    scenario: "ttft-delayed",
    metric: "p50Micros",
    unit: "µs",
    compare: "delta",
    target: 300
  },
  {
    title: "time to first token, 5 ms pause then one write, p90",
    scenario: "ttft-delayed",
    metric: "p90Micros",
    unit: "µs",
    compare: "delta",
    target: Infinity
  }
]

/** Per-repetition comparisons of `client` with the raw client of its protocol (repetitions pair up). */
const comparisons = (results: Results, client: ClientSpec, row: Row): Array<number> => {
  const raw = clients.find((c) => c.kind === "raw" && c.protocol === client.protocol)!
  const mine = results.runs[client.name]?.[row.scenario] ?? []
  const base = results.runs[raw.name]?.[row.scenario] ?? []
  const out: Array<number> = []
  for (let i = 0; i < Math.min(mine.length, base.length); i++) {
    const value = mine[i]![row.metric]!
    const reference = base[i]![row.metric]!
    out.push(row.compare === "ratio" ? value / reference : value - reference)
  }
  return out
}

const formatNumber = (value: number): string =>
  Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 10 ? value.toFixed(1) : value.toFixed(2)

const formatComparison = (row: Row, values: ReadonlyArray<number>): string => {
  if (values.length === 0) return "–"
  const show = (value: number) =>
    row.compare === "ratio" ? `${formatNumber(value)}x` : `${value >= 0 ? "+" : "−"}${formatNumber(Math.abs(value))} µs`
  const mid = show(median(values))
  if (values.length === 1) return mid
  return `${mid} (${show(Math.min(...values))} … ${show(Math.max(...values))})`
}

const absolute = (results: Results, client: ClientSpec, row: Row): string => {
  const values = (results.runs[client.name]?.[row.scenario] ?? []).map((run) => run[row.metric]!)
  return values.length === 0 ? "–" : `${formatNumber(median(values))} ${row.unit}`
}

/** Per-repetition ratios of `client`'s `metric` to `reference`'s (repetitions pair up). */
const ratios = (results: Results, client: string, reference: string, row: Row): Array<number> => {
  const mine = results.runs[client]?.[row.scenario] ?? []
  const base = results.runs[reference]?.[row.scenario] ?? []
  return Array.from(
    { length: Math.min(mine.length, base.length) },
    (_, i) => mine[i]![row.metric]! / base[i]![row.metric]!
  )
}

/** Appends the layered tables: each layer's CPU per chunk, as a ratio to bare effect-llm (target 1.1x) and to raw. */
const layeredReport = (
  lines: Array<string>,
  results: Results,
  layered: ReadonlyArray<ClientSpec>,
  activeRows: ReadonlyArray<Row>
): void => {
  const ratio = (values: ReadonlyArray<number>) => formatComparison({ ...activeRows[0]!, compare: "ratio" }, values)
  for (const row of activeRows.filter((row) => layeredScenarios.includes(row.scenario))) {
    const bare = clients.find((client) => client.name === "effect-llm-chat")!
    lines.push(`### Layers on effect-llm (Local): ${row.title}`, "")
    lines.push("| path | absolute | vs bare `Llm.streamText` (target <= 1.1x) | vs raw |", "|---|---|---|---|")
    for (const client of [bare, ...layered]) {
      const label = client === bare ? "bare `Llm.streamText`" : client.label
      lines.push(
        `| ${label} | ${absolute(results, client, row)} | ${
          client === bare ? "1.00x" : ratio(ratios(results, client.name, bare.name, row))
        } | ${ratio(ratios(results, client.name, "raw-chat", row))} |`
      )
    }
    lines.push("")
  }
}

/** The markdown report: one table per protocol, the targets, the micro measurements. */
const report = (results: Results, options: Options): string => {
  const lines: Array<string> = []
  const concurrent = scenarios.find((scenario) => scenario.name === "stream-256")!
  const streams = String((options.quick ? concurrent.quick : concurrent.full).count)
  const model = scenarios.find((scenario) => scenario.name === "stream-1000-model")!
  const conversations = (options.quick ? model.quick : model.full).count.toLocaleString("en")
  const activeRows = rows
    .filter((row) => options.scenarios.includes(row.scenario))
    .map((row) => ({ ...row, title: row.title.replace("256", streams).replace("1,000", conversations) }))
  for (const { protocol, title } of protocols) {
    const columns = options.clients.filter((client) => client.protocol === protocol && client.kind !== "layered")
    if (columns.length <= 1) continue
    const [raw, ...others] = columns
    lines.push(`### ${title}`, "")
    lines.push(`| scenario | ${raw!.label} (absolute) | ${others.map((client) => client.label).join(" | ")} |`)
    lines.push(`|---|---|${others.map(() => "---").join("|")}|`)
    for (const row of activeRows) {
      const cells = others.map((client) => formatComparison(row, comparisons(results, client, row)))
      lines.push(`| ${row.title} | ${absolute(results, raw!, row)} | ${cells.join(" | ")} |`)
    }
    lines.push("")
  }
  const mine = options.clients.filter((client) => client.kind === "mine")
  const peers = options.clients.filter((client) => client.kind === "peer")
  const floors = options.clients.filter((client) => client.kind === "floor")
  if (mine.length > 0) {
    lines.push("### Targets (effect-llm vs raw of the same protocol, medians)", "")
    const floorHeader = floors.length === 0
      ? ""
      : ` ${floors.map((client) => `floor, ${client.protocol}`).join(" | ")} |`
    lines.push(`| row | target | ${mine.map((client) => client.label).join(" | ")} | best peer |${floorHeader} met |`)
    lines.push(`|---|---|${mine.map(() => "---").join("|")}|---|${floors.map(() => "---|").join("")}---|`)
    for (const row of activeRows) {
      if (row.target === Infinity) continue
      const better = (a: number, b: number) => (row.higherIsBetter === true ? a > b : a < b)
      const reaches = (value: number) => (row.higherIsBetter === true ? value >= row.target : value <= row.target)
      const mineValues = mine.map((client) => median(comparisons(results, client, row)))
      const peerValues = peers
        .map((client) => ({ client, value: median(comparisons(results, client, row)) }))
        .filter((peer) => Number.isFinite(peer.value))
      const best = peerValues.reduce<typeof peerValues[number] | undefined>(
        (acc, peer) => (acc === undefined || better(peer.value, acc.value) ? peer : acc),
        undefined
      )
      const floorValues = floors.map((client) => median(comparisons(results, client, row)))
      const show = (value: number) =>
        !Number.isFinite(value)
          ? "–"
          : row.compare === "ratio"
          ? `${formatNumber(value)}x`
          : `${value < 0 ? "−" + formatNumber(-value) : "+" + formatNumber(value)} µs`
      const targetText = row.compare === "ratio"
        ? `${row.higherIsBetter === true ? ">=" : "<="} ${row.target}x`
        : `<= +${row.target} µs`
      const met = mineValues.every((value) => reaches(value) && (best === undefined || better(value, best.value)))
      // the target lies beyond what raw behind the least Effect stream reaches, for every protocol that misses it
      const beyondFloor = !met && mine.every((client, i) =>
        reaches(mineValues[i]!) ||
        floors.some((floor, j) => floor.protocol === client.protocol && !reaches(floorValues[j]!))
      )
      lines.push(
        `| ${row.title} | ${targetText} | ${mineValues.map(show).join(" | ")} | ${
          best === undefined ? "–" : `${show(best.value)} (${best.client.label}, ${best.client.protocol})`
        } |${floors.length === 0 ? "" : ` ${floorValues.map(show).join(" | ")} |`} ${
          met ? "yes" : beyondFloor ? "**no**: beyond the floor" : "**no**"
        } |`
      )
    }
    lines.push("")
  }
  const layered = options.clients.filter((client) => client.kind === "layered")
  if (layered.length > 0) layeredReport(lines, results, layered, activeRows)
  if (results.micro.length > 0) {
    const m = (name: string) => median(results.micro.map((run) => run[name]!))
    lines.push("### In-process", "")
    lines.push("| measurement | value |", "|---|---|")
    for (const size of [100, 1_000, 10_000]) {
      const micros = m(`prune${size}Micros`)
      lines.push(
        `| \`ConversationContext\` add a turn + prune + \`.messages\`, ${size.toLocaleString("en")} messages | ${
          formatNumber(micros)
        } µs (${formatNumber((micros * 1000) / size)} ns per message) |`
      )
    }
    lines.push(
      `| growth, 100 → 10,000 messages (1.0 = linear) | ${
        formatNumber(m("prune10000Micros") / m("prune100Micros") / 100)
      } |`
    )
    const naive = m("naiveSentencesMicros")
    const ratio = (micros: number) => `${formatNumber(micros)} µs (${formatNumber(micros / naive)}x raw)`
    lines.push(
      `| sentence chunking: raw baseline (a naive regex splitter, no Effect), per delta | ${formatNumber(naive)} µs |`
    )
    lines.push(
      `| sentence chunking: the chunking alone (\`Intl.Segmenter\` and its rules, no stream), per delta | ${
        ratio(m("chunkerMicros"))
      } |`
    )
    lines.push(
      `| sentence chunking: \`LlmStream.sentences\`, per delta, deltas batched per read / one delta per chunk | ${
        ratio(m("sentencesBatchedMicros"))
      } / ${ratio(m("sentencesPerChunkMicros"))} |`
    )
    lines.push(
      `| sentence chunking: \`LlmStream.sentences\` for speech (speakable, min/max length, first chunk), batched / one per chunk | ${
        ratio(m("speechBatchedMicros"))
      } / ${ratio(m("speechPerChunkMicros"))} |`
    )
    lines.push(
      `| sentence chunking: growth per delta, a reply ten times as long, for speech (1.0 = linear) | ${
        formatNumber(m("speechLongBatchedMicros") / m("speechBatchedMicros"))
      } |`
    )
    lines.push(
      `| importing the library on top of \`effect\` and \`undici\` (fresh processes; those two alone: ${
        formatNumber(m("baseRssMB"))
      } MB RSS, ${formatNumber(m("baseHeapMB"))} MB heap): RSS / heap in use / time | +${
        formatNumber(m("importRssMB"))
      } MB / +${formatNumber(m("importHeapMB"))} MB / ${formatNumber(m("importMillis"))} ms |`
    )
    lines.push(
      `| (\`LlmStream.textDeltas\` alone, batched / one per chunk) | ${
        formatNumber(m("textDeltasBatchedMicros"))
      } µs / ${formatNumber(m("textDeltasPerChunkMicros"))} µs |`
    )
    lines.push("")
  }
  return lines.join("\n")
}

const require = createRequire(import.meta.url)

/** The installed version of a package. */
const versionOf = (name: string): string => {
  try {
    return (require(path.join(root, "node_modules", name, "package.json")) as { version: string }).version
  } catch {
    return "?"
  }
}

const main = async (): Promise<void> => {
  const options = parseOptions(process.argv.slice(2))
  const started = Date.now()
  const log = (message: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`)
  log(`building to ${path.relative(root, outdir)}`)
  await buildAll()
  if (options.buildOnly) return
  if (options.profileDir !== undefined) mkdirSync(options.profileDir, { recursive: true })
  const server = await startServer()
  log(`fake server at ${server.origin}`)
  const results: Results = { runs: {}, micro: [] }
  // a process per (client, scenario); --quick runs all the scenarios of a client in one process
  const groups: Array<ReadonlyArray<ScenarioName>> = options.quick
    ? [options.scenarios]
    : options.scenarios.map((scenario) => [scenario])
  try {
    for (let rep = 0; rep < options.reps; rep++) {
      for (const group of groups) {
        for (const client of shuffled(options.clients)) {
          const scenariosOf = client.kind === "layered"
            ? group.filter((scenario) => layeredScenarios.includes(scenario))
            : group
          if (scenariosOf.length === 0) continue
          const args: WorkerArgs = {
            client: client.name,
            scenarios: scenariosOf,
            origin: server.origin,
            quick: options.quick,
            durationMillis: options.durationMillis,
            profileDir: options.profileDir,
            rep
          }
          const result = await runWorker(args, options.nodeArgs)
          const byScenario = (results.runs[client.name] ??= {})
          for (const scenario of scenariosOf) {
            const metrics = result[scenario]
            if (metrics === undefined) throw new Error(`${client.name} returned nothing for ${scenario}`)
            ;(byScenario[scenario] ??= []).push(metrics)
            log(`rep ${rep + 1}/${options.reps} ${scenario} ${client.name} ${JSON.stringify(metrics)}`)
          }
        }
      }
      if (options.micro) {
        const { micro } = await runWorker(
          { micro: true, origin: server.origin, quick: options.quick },
          options.nodeArgs
        )
        results.micro.push({ ...micro!, ...(await importCost()) })
        log(`rep ${rep + 1}/${options.reps} micro ${JSON.stringify(micro)}`)
      }
    }
  } finally {
    server.process.stdin?.end()
    server.process.kill()
  }
  const packages = [
    "effect",
    "@effect/platform",
    "@effect/platform-node",
    "undici",
    "openai",
    "@anthropic-ai/sdk",
    "ai",
    "@ai-sdk/openai",
    "@ai-sdk/anthropic",
    "@effect/ai",
    "@effect/ai-openai",
    "@effect/ai-anthropic"
  ]
  const header = [
    `Run ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC: \`npm run bench${
      process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""
    }\``,
    `(${options.reps} repetition${options.reps === 1 ? "" : "s"}${options.quick ? ", quick sizes" : ""}, ${
      ((Date.now() - started) / 1000).toFixed(0)
    } s).`,
    `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? "?"}, ${
      (os.totalmem() / 2 ** 30).toFixed(0)
    } GiB, ${os.platform()} ${os.release()}, Node ${process.version}.`,
    `Packages: ${packages.map((name) => `${name} ${versionOf(name)}`).join(", ")}.`,
    ""
  ]
  const markdown = header.join("\n") + "\n" + report(results, options)
  process.stdout.write(markdown + "\n")
  if (options.json !== undefined) {
    mkdirSync(path.dirname(path.resolve(options.json)), { recursive: true })
    writeFileSync(
      options.json,
      JSON.stringify({ options: { ...options, clients: options.clients.map((c) => c.name) }, results }, null, 2)
    )
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})

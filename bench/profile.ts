/**
 * Summarises V8 CPU profiles (`node --cpu-prof`) by self time: the top
 * functions, and the share of each package (effect, @effect/platform,
 * undici, node internals, the library, the garbage collector…). Used to find
 * where a client spends its time, and to show which part of a cost lies in
 * a dependency.
 *
 *   npx tsx bench/profile.ts [--top N] [--focus TEXT] file.cpuprofile...
 *
 * `--focus TEXT` also prints the inclusive time of every function whose name
 * or URL contains TEXT (time spent in it and everything it called), and the
 * call paths (five frames up) that lead to it. `--merge` sums the given
 * profiles into one summary (the repetitions of one client and scenario).
 */
import { readFileSync } from "node:fs"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** The package (or area) a script URL belongs to. */
const areaOf = (url: string, functionName = ""): string => {
  if (functionName === "(garbage collector)") return "garbage collector"
  if (url === "") return "native (syscalls, V8 builtins, inspector)"
  if (url.startsWith("node:")) return "node internals"
  const modules = url.lastIndexOf("/node_modules/")
  if (modules >= 0) {
    const rest = url.slice(modules + "/node_modules/".length).split("/")
    if (rest[0] === ".cache") return "bench build (src + bench)"
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  return url.replace(/^file:\/\//, "")
}

/** A function's name with the file (within its package) and line it comes from. */
const frameKey = (frame: CallFrame): string => {
  const modules = frame.url.lastIndexOf("/node_modules/")
  const where = modules >= 0
    ? frame.url.slice(modules + "/node_modules/".length).replace("/dist/esm/", "/")
    : frame.url.replace(/^file:\/\//, "")
  return `${frame.functionName || "(anonymous)"} ${where === "" ? "(native)" : where}:${frame.lineNumber + 1}`
}

/** One profile read: its nodes by id, and the self time of each node. */
interface Loaded {
  readonly profile: Profile
  readonly byId: ReadonlyMap<number, ProfileNode>
  readonly self: ReadonlyMap<number, number>
}

const load = (file: string): Loaded => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
  const self = new Map<number, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  return { profile, byId: new Map(profile.nodes.map((node) => [node.id, node])), self }
}

/** Self time by node, over one or several profiles (each `[profile, node id]`). */
const selfTimes = function*(loaded: ReadonlyArray<Loaded>): Generator<readonly [Loaded, number, number]> {
  for (const one of loaded) for (const [id, time] of one.self) yield [one, id, time]
}

const summarise = (title: string, loaded: ReadonlyArray<Loaded>, top: number, focus: string | undefined): void => {
  let total = 0
  const functions = new Map<string, number>()
  const areas = new Map<string, number>()
  let idle = 0
  for (const [{ byId }, id, time] of selfTimes(loaded)) {
    total += time
    const frame = byId.get(id)!.callFrame
    // idle time, and the inspector's own work of stopping an in-process profile (bench --profile)
    if (frame.functionName === "(idle)" || (frame.functionName === "dispatch" && frame.url === "")) {
      idle += time
      continue
    }
    const key = frameKey(frame)
    functions.set(key, (functions.get(key) ?? 0) + time)
    const area = areaOf(frame.url, frame.functionName)
    areas.set(area, (areas.get(area) ?? 0) + time)
  }
  const busy = total - idle
  const pct = (time: number) => `${((100 * time) / busy).toFixed(1).padStart(5)}%`
  const ms = (time: number) => `${(time / 1000).toFixed(1).padStart(8)} ms`
  console.log(`\n== ${title}: ${ms(busy)} busy, ${ms(idle)} idle`)
  console.log("-- by area (self time)")
  for (const [area, time] of [...areas].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    console.log(`${ms(time)} ${pct(time)}  ${area}`)
  }
  if (process.env.BY_FILE !== undefined) {
    const files = new Map<string, number>()
    for (const [key, time] of functions) {
      const file = key.slice(key.indexOf(" ") + 1, key.lastIndexOf(":"))
      files.set(file, (files.get(file) ?? 0) + time)
    }
    console.log("-- by file (self time)")
    for (const [name, time] of [...files].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${ms(time)} ${pct(time)}  ${name}`)
    }
  }
  console.log(`-- top ${top} functions (self time)`)
  for (const [name, time] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${ms(time)} ${pct(time)}  ${name}`)
  }
  if (focus !== undefined) {
    // inclusive time: a sample counts once for every distinct matching frame on its stack
    const parents = new Map<Loaded, Map<number, number>>()
    for (const one of loaded) {
      const parent = new Map<number, number>()
      for (const node of one.profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
      parents.set(one, parent)
    }
    const inclusive = new Map<string, number>()
    for (const [one, id, time] of selfTimes(loaded)) {
      const { byId } = one
      const parent = parents.get(one)!
      const seen = new Set<string>()
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const frame = byId.get(at)!.callFrame
        const key = frameKey(frame)
        if (!seen.has(key) && key.includes(focus)) {
          seen.add(key)
          inclusive.set(key, (inclusive.get(key) ?? 0) + time)
        }
      }
    }
    console.log(`-- inclusive time of frames matching ${JSON.stringify(focus)}`)
    for (const [name, time] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${ms(time)} ${pct(time)}  ${name}`)
    }
    const paths = new Map<string, number>()
    for (const [one, id, time] of selfTimes(loaded)) {
      const { byId } = one
      const parent = parents.get(one)!
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        if (!frameKey(byId.get(at)!.callFrame).includes(focus)) continue
        const path: Array<string> = []
        for (let up: number | undefined = at; up !== undefined && path.length < 6; up = parent.get(up)) {
          path.push(frameKey(byId.get(up)!.callFrame))
        }
        const key = path.join("\n      <- ")
        paths.set(key, (paths.get(key) ?? 0) + time)
        break
      }
    }
    console.log(`-- call paths into ${JSON.stringify(focus)}`)
    for (const [path, time] of [...paths].sort((a, b) => b[1] - a[1]).slice(0, 8)) {
      console.log(`${ms(time)} ${pct(time)}  ${path}`)
    }
  }
}

const args = process.argv.slice(2)
let top = 30
let focus: string | undefined
let merge = false
const files: Array<string> = []
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--top") top = Number(args[++i])
  else if (args[i] === "--focus") focus = args[++i]
  else if (args[i] === "--merge") merge = true
  else files.push(args[i]!)
}
// a reader that closes early (`| head`) is not an error
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error
})
if (merge) summarise(`${files.length} profiles merged`, files.map(load), top, focus)
else for (const file of files) summarise(file, [load(file)], top, focus)

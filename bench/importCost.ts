/**
 * What importing the library costs, in a fresh process: `effect` (the whole
 * barrel) and `undici` are imported first, as any application using the
 * library has them, then (unless `base` is asked for) the library's entry
 * point, built as the published package is (scripts/build.ts: a few ES module chunks).
 * Prints RSS and heap in use after a full collection, and how long the
 * library's import took, as one JSON line. Run with `--expose-gc`:
 *
 *   node --expose-gc importCost.js base|library
 */
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath, pathToFileURL } from "node:url"

const collect = (): void => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("run with --expose-gc")
  gc()
  gc()
}

const main = async (): Promise<void> => {
  const library = process.argv[2] === "library"
  await import("effect")
  await import("undici")
  const start = performance.now()
  // next to this file: the library's modules, transpiled one by one (see bench/run.ts)
  if (library) await import(pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), "lib/index.js")).href)
  const importMillis = performance.now() - start
  collect()
  const memory = process.memoryUsage()
  process.stdout.write(
    JSON.stringify({ rssMB: memory.rss / 1e6, heapMB: memory.heapUsed / 1e6, importMillis }) + "\n"
  )
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    process.exit(1)
  }
)

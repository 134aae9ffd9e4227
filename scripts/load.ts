/**
 * Load: N concurrent streams (default 1,000) through one `Llm` layer, then
 * through a two-backend `Fallback` layer whose primary fails one request in
 * five, against the fake provider server on loopback. Every stream must
 * complete with its own text. Prints the figures and exits non-zero on any
 * failure.
 *
 *   npx tsx scripts/load.ts [streams]
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { mb } from "../test/reliability/probes.js"
import { load, type LoadFigures } from "../test/reliability/workloads.js"

const streams = Number(process.argv[2] ?? 1000)

const report = (label: string, f: LoadFigures) => {
  const ok = f.succeeded === f.streams && f.failed === 0 && f.wrongText === 0
  console.log(`\n${label}: ${ok ? "PASS" : "FAIL"}`)
  console.log(
    `  streams              ${f.streams} (succeeded ${f.succeeded}, failed ${f.failed}, wrong text ${f.wrongText})`
  )
  console.log(
    `  answered by          ${Object.entries(f.answeredBy).map(([name, n]) => `${name} ${n}`).join(", ")}${
      f.fallback ? ` (${f.fellBack} after a fallback)` : ""
    }`
  )
  console.log(`  peak in flight       ${f.peakInFlight} requests at the primary server`)
  console.log(
    `  requests/connections primary ${f.primary.received}/${f.primary.connections}${
      f.secondary ? `, secondary ${f.secondary.received}/${f.secondary.connections}` : ""
    }`
  )
  console.log(`  wall time            ${(f.elapsedMillis / 1000).toFixed(1)} s`)
  console.log(`  heap before          ${mb(f.heapBefore)} MB`)
  if (f.heapAllOpen !== undefined) {
    console.log(
      `  heap, all open       ${mb(f.heapAllOpen)} MB live after GC with ${f.peakInFlight} requests open (${
        Math.round((f.heapAllOpen - f.heapBefore) / f.peakInFlight / 1024)
      } KiB each, client and server)`
    )
  }
  console.log(`  peak heap used       ${mb(f.memory.peakHeap)} MB (sampled every 10 ms; garbage included)`)
  console.log(`  peak heap+buffers    ${mb(f.memory.peakJs)} MB`)
  console.log(
    `  peak RSS             ${mb(f.memory.peakRss)} MB (process max RSS ${
      mb(f.memory.maxRss)
    } MB; client and fake server share the process)`
  )
  for (const failure of f.failures) console.log(`  ! ${failure}`)
  return ok
}

const main = Effect.gen(function*() {
  console.log(`load: ${streams} concurrent streams, node ${process.version}, ${process.platform}/${process.arch}`)
  const single = yield* load({ streams, fallback: false })
  const okSingle = report("one Llm layer (local backend)", single)
  const chained = yield* load({ streams, fallback: true })
  const okChained = report("Fallback layer (local primary failing 1 in 5 -> anthropic)", chained)
  console.log(`\n${JSON.stringify({ single, chained })}`)
  if (!okSingle || !okChained) process.exitCode = 1
}).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))

Effect.runPromise(main)

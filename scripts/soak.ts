/**
 * Soak: N calls (default 20,000) mixing whole requests, streams, tool loops
 * (whole and streamed), consumers that stop early and injected faults
 * (statuses, resets, hangs, stalls, malformed and cut-off streams, in-band
 * errors) over all four backends, against the fake provider server. Every
 * call must end as its kind requires; afterwards requests in flight, fibers
 * and timers must be back at their baseline, sockets and handles back at the
 * start once the layers are closed, and heap growth within noise. Prints the
 * figures and exits non-zero on any failure.
 *
 *   npx tsx scripts/soak.ts [calls] [concurrency]
 */
import * as Effect from "effect/Effect"
import { mb } from "../test/reliability/probes.js"
import { soak } from "../test/reliability/workloads.js"

const calls = Number(process.argv[2] ?? 20_000)
const concurrency = Number(process.argv[3] ?? 32)

const main = Effect.gen(function*() {
  console.log(
    `soak: ${calls} calls at concurrency ${concurrency}, node ${process.version}, ${process.platform}/${process.arch}`
  )
  const started = Date.now()
  const f = yield* soak({
    calls,
    concurrency,
    progress: (done) =>
      console.log(
        `  ${done} calls (${((Date.now() - started) / 1000).toFixed(0)} s, heap ${
          mb(process.memoryUsage().heapUsed)
        } MB)`
      )
  })
  const ok = f.unexpected === 0 && f.settledOpen && f.settledClosed && f.after.fibers === 0 &&
    f.closed.serverSockets === 0 && f.closed.sockets <= f.start.sockets && f.closed.timers <= f.start.timers
  console.log(`\nsoak: ${ok ? "PASS" : "FAIL"}`)
  console.log(
    `  calls                ${f.calls} in ${(f.elapsedMillis / 1000).toFixed(1)} s (${
      Math.round(f.calls / (f.elapsedMillis / 1000))
    }/s), ${f.requests} HTTP requests, ${f.connections} connections`
  )
  console.log(`  ended as expected    ${f.calls - f.unexpected} of ${f.calls}`)
  for (const [kind, { asExpected, calls: n }] of Object.entries(f.kinds).sort()) {
    console.log(
      `    ${kind.padEnd(14)} ${String(n).padStart(6)} calls, ${asExpected === n ? "all" : asExpected} as expected`
    )
  }
  console.log(`  closed by client     ${f.closedByClient} requests (timeouts, stalls, early stops)`)
  const row = (label: string, s: typeof f.start) =>
    console.log(
      `  ${label.padEnd(20)} heap ${String(mb(s.heap)).padStart(6)} MB  server sockets ${
        String(s.serverSockets).padStart(4)
      }  socket handles ${String(s.sockets).padStart(4)}  timers ${s.timers}  fibers ${s.fibers}`
    )
  row("start (no layers)", f.start)
  row("baseline (warm)", f.baseline)
  row("after the soak", f.after)
  row("layers closed", f.closed)
  console.log(`  heap growth          ${mb(f.heapGrowth)} MB (after - baseline, both after forced GC)`)
  console.log(
    `  peak heap used       ${mb(f.memory.peakHeap)} MB, peak RSS ${mb(f.memory.peakRss)} MB (garbage included)`
  )
  console.log(`  handles at start     ${JSON.stringify(f.start.handles)}`)
  console.log(`  handles closed       ${JSON.stringify(f.closed.handles)}`)
  for (const sample of f.unexpectedSamples) console.log(`  ! ${sample}`)
  console.log(`\n${JSON.stringify(f)}`)
  if (!ok) process.exitCode = 1
})

Effect.runPromise(main)

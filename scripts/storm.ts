/**
 * Interruption storm: N streams (default 500) started at once, each
 * interrupted at a random point; half plain streams, half conversation turns
 * with tool loops. The fake server must see every connection finished or
 * closed, no fiber may be left, nothing logged, no unhandled rejection, and
 * every conversation must be valid and take its next turn. Prints the figures
 * and exits non-zero on any failure.
 *
 *   npx tsx scripts/storm.ts [streams] [seed]
 */
import * as Effect from "effect/Effect"
import { storm } from "../test/reliability/workloads.js"

const streams = Number(process.argv[2] ?? 500)
const seed = Number(process.argv[3] ?? 500)

const main = Effect.gen(function*() {
  console.log(`storm: ${streams} streams, seed ${seed}, node ${process.version}, ${process.platform}/${process.arch}`)
  const started = Date.now()
  const f = yield* storm({ streams, seed })
  const ok = f.failed === 0 && f.inFlightAfter === 0 && f.fibersAfter === 0 && f.badLogs.length === 0 &&
    f.processErrors === 0 && f.invalidConversations.length === 0 && f.continued === f.conversations && f.settledClosed
  console.log(`\nstorm: ${ok ? "PASS" : "FAIL"} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
  console.log(
    `  streams              ${f.streams}: ${f.interrupted} interrupted, ${f.completed} ended before their interruption, ${f.failed} failed`
  )
  console.log(
    `  server               ${f.requests} requests: ${f.finishedRequests} finished, ${f.closedByClient} closed by the client, ${f.inFlightAfter} still open`
  )
  console.log(`  fibers left          ${f.fibersAfter}`)
  console.log(`  log lines            ${f.badLogs.length}; unhandled rejections/exceptions ${f.processErrors}`)
  console.log(
    `  conversations        ${f.conversations}: ${f.invalidConversations.length} invalid, ${f.recordedInterrupted} recorded an interrupted reply, ${f.continued} took their next turn`
  )
  console.log(
    `  after closing        sockets ${f.end.sockets} (start ${f.start.sockets}), timers ${f.end.timers} (start ${f.start.timers}), server sockets ${f.end.serverSockets}`
  )
  for (const failure of [...f.failures, ...f.invalidConversations]) console.log(`  ! ${failure}`)
  for (const log of f.badLogs.slice(0, 5)) console.log(`  ! log: ${log.formatted.split("\n")[0]}`)
  console.log(`\n${JSON.stringify({ ...f, badLogs: f.badLogs.length })}`)
  if (!ok) process.exitCode = 1
})

Effect.runPromise(main)

/**
 * CI-sized soak: a few thousand calls mixing whole requests, streams, tool
 * loops (whole and streamed), consumers that stop early and injected faults,
 * over all four backends. Every call must end as its kind requires; afterwards
 * requests in flight, fibers and timers return to their baseline with the
 * layers open, and sockets and handles return to the start once the layers are
 * closed. Asserts counts, never time (`scripts/soak.ts` runs >= 20,000 calls).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { soak } from "./workloads.js"

const calls = 2_500

describe("soak", () => {
  it.live(
    `${calls} mixed calls with faults: every outcome as expected, and nothing left behind`,
    () =>
      Effect.gen(function*() {
        const figures = yield* soak({ calls, concurrency: 32, warmup: 300 })
        expect(figures.unexpectedSamples).toEqual([])
        expect(figures.unexpected).toBe(0)
        // every kind of call and fault was exercised
        expect(Object.keys(figures.kinds).sort()).toEqual([
          "badRequest",
          "complete",
          "consumerStops",
          "cutOff",
          "hangOnce",
          "inBandEarly",
          "inBandLate",
          "malformed",
          "resetBefore",
          "resetMid",
          "retry429",
          "retry503",
          "stall",
          "stream",
          "toolStream",
          "tools"
        ])
        expect(figures.requests).toBeGreaterThan(calls)
        // layers open: nothing in flight, no fiber, no timer beyond the baseline
        expect(figures.settledOpen).toBe(true)
        expect(figures.after.fibers).toBe(0)
        expect(figures.after.timers).toBeLessThanOrEqual(figures.baseline.timers)
        // idle keep-alive sockets are bounded by the concurrency (four clients), not by the number of calls
        expect(figures.after.serverSockets).toBeLessThanOrEqual(4 * 32)
        // layers closed: every socket and handle is gone
        expect(figures.settledClosed).toBe(true)
        expect(figures.closed.serverSockets).toBe(0)
        expect(figures.closed.sockets).toBeLessThanOrEqual(figures.start.sockets)
        expect(figures.closed.timers).toBeLessThanOrEqual(figures.start.timers)
        // no kind of handle (socket, timer, server, pipe, ...) is left above its count at the start
        for (const [kind, count] of Object.entries(figures.closed.handles)) {
          expect(count, kind).toBeLessThanOrEqual(figures.start.handles[kind] ?? 0)
        }
        // heap after collection: a leak of even 10 KiB a call would show as 25 MB here
        expect(figures.heapGrowth).toBeLessThan(16 * 1024 * 1024)
      }),
    120_000
  )
})

/**
 * CI-sized load: hundreds of concurrent streams through one `Llm` layer, and
 * through a two-backend `Fallback` layer whose primary fails one request in
 * five. Every stream must complete with its own text; none may fail. Asserts
 * correctness, never time (`scripts/load.ts` runs the full-sized version and
 * reports memory).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { load } from "./workloads.js"

const streams = 250

describe("load", () => {
  it.live(
    `${streams} concurrent streams through one layer: each gets its own text, none fails`,
    () =>
      Effect.gen(function*() {
        const figures = yield* load({ streams, fallback: false })
        expect(figures.failures).toEqual([])
        expect(figures.succeeded).toBe(streams)
        expect(figures.answeredBy).toEqual({ local: streams })
        // they really overlapped at the server
        expect(figures.peakInFlight).toBeGreaterThan(1)
        expect(figures.primary.received).toBe(streams)
      }),
    60_000
  )

  it.live(
    `${streams} concurrent streams through a two-backend Fallback layer whose primary fails often`,
    () =>
      Effect.gen(function*() {
        const figures = yield* load({ streams, fallback: true }).pipe(
          Effect.provide(Logger.remove(Logger.defaultLogger))
        )
        expect(figures.failures).toEqual([])
        expect(figures.succeeded).toBe(streams)
        // one in five fails on the primary (503 or a reset) and is answered by the secondary (more, if the primary's
        // circuit breaker opened for a while)
        expect(figures.answeredBy.anthropic).toBeGreaterThanOrEqual(streams / 5)
        expect((figures.answeredBy.local ?? 0) + figures.answeredBy.anthropic!).toBe(streams)
        expect(figures.fellBack).toBeGreaterThanOrEqual(streams / 5)
      }),
    60_000
  )
})
